"""Write-back state of the customers agent: decided states wait in memory, flushed together.

After each batch the agent puts every customer's new values into its tables' overlays
(``tables.documents.overlays``, which every ``read`` consults before the store) and *holds*
the batch's events (``app.kafka.internals.hold``): the stream's ack no longer marks their
offsets committable. A flush, every ``PERSONA_FLUSH_INTERVAL_S`` seconds, as soon as
``PERSONA_FLUSH_MAX_KEYS`` customers wait, once no batch came for ``IDLE_S``, or as soon
as a rebalance or a shutdown starts:

1. moves the overlays aside (reads still see those values until step 3);
2. writes the ``first`` rows (the windowed KPI rows, ``agents/kpis.py``) and waits for
   their changelog records, so a KPI row is never behind a customer document it counts;
   then writes each changed key once per table (RocksDB + one changelog record, to the changelog
   partition of that customer's last event, as Faust's table write does) and a tombstone
   for each erased one: on RocksDB in bulk (``app.kafka.fastpath``: one WriteBatch per
   partition, records straight to the producer, the persisted offset once per partition),
   else by Faust's table writes; both tables are written before either overlay is
   dropped, so a read sees both new values or neither;
3. moves the written values from the overlays into the tables' read caches
   (``tables.documents.ReadCache``, dropped on every rebalance), waits until the broker has
   every changelog record, and only then releases the held events, so Faust's next commit
   may move past them.

A crash anywhere before step 3's release leaves those offsets uncommitted: the events are
redelivered against the last flushed state (the store may be ahead of the changelog, as
before: the rules' dedupe turns those into rewrites, see ``agents.customer_state.apply_event``).
So a customer changed many times between flushes costs one record per table, not one
per batch. Webhook requests are still sent (and acknowledged) per batch, before its states
enter the overlays.
"""
from __future__ import annotations

import asyncio
import time

from app import failpoints, metrics
from app.kafka import fastpath
from app.kafka.internals import as_current_event, drain_producer, hold, release
from tables.documents import cache_of, encode, overlay_of

#: A value that leaves the key's entry in that table as it is.
KEEP = object()
#: No batch for this long: flush now. Waiting saves records only while changes come in;
#: on quiet input it would only keep the events uncommitted (and not yet durable) longer.
IDLE_S = 0.5
YIELD_EVERY = 25


class WriteBack:
    """Changed keys of several tables since the last flush, and the events they came from."""

    def __init__(self, app, tables, interval_s: float, max_keys: int, first=None):
        self.app, self.tables = app, tuple(tables)
        #: Written (changelog acknowledged) before the tables: ``agents.kpis.KpiRows``.
        self.first = first
        self.interval_s, self.max_keys = interval_s, max_keys
        self.layers = [overlay_of(table) for table in self.tables]
        self.caches = [cache_of(table) for table in self.tables]
        self.last_event: dict = {}  # key -> its latest event (changelog partition)
        self.held: list = []  # messages of the events whose offsets wait for the flush
        self.stamps: list = []  # Kafka timestamps of the held events that changed state
        self.since = None  # monotonic time of the oldest unflushed change
        self.latest = None  # monotonic time of the newest one
        self.lock = asyncio.Lock()

    def put(self, key, values, event) -> None:
        """``values``: one per table, a document, None (delete) or ``KEEP``."""
        for (newest, _), value in zip(self.layers, values, strict=True):
            if value is not KEEP:
                newest[key] = value
        self.last_event[key] = event

    def add_events(self, events, stamps=()) -> None:
        """Hold ``events`` (their states are in the overlays) until the next flush;
        ``stamps``: Kafka timestamps observed as freshness (durable) once flushed."""
        hold(events)
        self.held.extend([event.message for event in events])
        self.stamps.extend(stamps)
        metrics.PENDING.set(len(self.held))
        self.latest = time.monotonic()
        if self.since is None:
            self.since = self.latest

    def forget(self) -> None:
        """Drop everything not flushed yet, without acking (tests reset with this)."""
        for layer in self.layers:
            for values in layer:
                values.clear()
        self.last_event.clear()
        self.held.clear()
        self.stamps.clear()
        self.since = self.latest = None
        self.drop_caches()
        if self.first is not None:
            self.first.forget()

    def full(self) -> bool:
        """``max_keys`` customers wait: the agent flushes before its next batch."""
        return len(self.last_event) >= self.max_keys

    def due(self) -> bool:
        if self.since is None:
            return False
        app, now = self.app, time.monotonic()
        return (len(self.last_event) >= self.max_keys or app.rebalancing or app.should_stop
                or now - self.since >= self.interval_s or now - self.latest >= IDLE_S)

    async def flush_if_due(self) -> None:
        if self.due():
            await self.flush()

    async def flush(self) -> int:
        """Write every waiting value, make the changelog durable, release the events."""
        async with self.lock:
            started = time.perf_counter()
            held, self.held = self.held, []
            stamps, self.stamps = self.stamps, []
            events, self.last_event = self.last_event, {}
            self.since = self.latest = None
            for newest, flushing in self.layers:  # no await: one step for readers
                flushing.update(newest)
                newest.clear()
            if self.first is not None:
                await self.first.write(self.app, *self.first.take())
                failpoints.hit("flush.after_kpis")
            if self.bulk():
                written = await self.write_bulk(events)
            else:
                written = await self.write_each(events)
            await changelog_durable(self.app)
            failpoints.hit("flush.after_changelog")
            release(self.app, held)
            metrics.PENDING.set(len(self.held))
            metrics.FRESHNESS.observe_ages(stamps, "durable")
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            return written

    def bulk(self) -> bool:
        return self.app.producer.state == "running" and all(map(fastpath.supports, self.tables))

    async def write_bulk(self, events: dict) -> int:
        """Both tables' stores in one step, then every changelog record at once.

        One step (no await while encoding): the agent's next versions of a document may be
        built from the one being flushed, so encoding must not interleave with the agent.
        Encoding in steps of 250 keys, with the agent running between them, lost events in
        the chaos test (2 of 2 runs under load; none lost in 2 runs without it)."""
        records = []
        for table, (_, flushing) in zip(self.tables, self.layers, strict=True):
            records.append(fastpath.put_local(table, [
                (key, None if value is None else encode(value), events[key].message.partition)
                for key, value in flushing.items()]))
        failpoints.hit("flush.after_local_write")
        self.retire()  # no await since the stores have them
        await asyncio.gather(*(fastpath.send_changelog(self.app, table, recs)
                               for table, recs in zip(self.tables, records, strict=True)))
        for table, recs in zip(self.tables, records, strict=True):
            metrics.CHANGELOG_RECORDS.labels(table.name).inc(len(recs))
        return sum(map(len, records))

    async def write_each(self, events: dict) -> int:
        """Faust's table writes, key by key (other stores, Faust's test context)."""
        written = 0
        for table, (_, flushing) in zip(self.tables, self.layers, strict=True):
            for key, value in flushing.items():
                with as_current_event(events[key]):
                    write(table, key, value)
                written += 1
                if written % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            metrics.CHANGELOG_RECORDS.labels(table.name).inc(len(flushing))
        self.retire()  # no await: both tables at once
        return written

    def retire(self) -> None:
        """The flushed values (now in the stores) leave the overlays for the read caches;
        not while a rebalance runs: the caches are dropped then (``drop_caches``)."""
        keep = not self.app.rebalancing
        for (_, flushing), cache in zip(self.layers, self.caches, strict=True):
            if keep:
                cache.keep(flushing)
            flushing.clear()

    def drop_caches(self) -> None:
        """Forget every cached value: this worker's partitions are about to change, and a
        partition may come back changed by another worker."""
        for cache in self.caches:
            cache.clear()


def write(table, key, value) -> None:
    if value is not None:
        table[key] = encode(value)
        return
    # Tombstone even if the key is already gone here: after a crash the local store can
    # be ahead of the changelog; the redelivered command repairs it.
    try:
        del table[key]
    except KeyError:
        pass


async def changelog_durable(app) -> None:
    """Wait until the broker has every changelog record written so far.

    Faust's own pre-commit flush gives up after 0.1 s without progress, so under load a
    commit could otherwise run ahead of the changelog and a crash would lose updates.
    """
    producer = app.producer
    if producer.state != "running":  # Faust's agent test context has no producer
        return
    await drain_producer(producer)
