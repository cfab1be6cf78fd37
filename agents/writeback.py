"""Write-back state of the customers agent: decided states wait in memory, flushed per partition.

After each batch the agent puts every customer's new values into its tables' overlays
(``tables.documents.overlays``, which every ``read`` consults before the store) and *holds*
the batch's acks (``app.kafka.intake``): their offsets are not committable until released.
Each ``events`` partition is flushed on its own, when ``agents.flush_schedule`` says (once
its oldest change is ``PERSONA_FLUSH_INTERVAL_S`` old, the partitions' flushes spread evenly
over the interval; all at once as soon as ``PERSONA_FLUSH_MAX_KEYS`` customers wait, on quiet
input, a rebalance or a shutdown). A flush of a set of partitions (their customers: a
customer's events all come from its own partition):

1. moves their overlay values aside (reads still see those values until step 3);
2. writes their ``first`` rows (the windowed KPI rows, ``agents/kpis.py``, per partition)
   and waits for their changelog records, so a KPI row is never behind a customer document
   it counts; then writes each changed key once per table (RocksDB + one changelog record,
   to the changelog partition of that customer's last event, as Faust's table write does)
   and a tombstone for each erased one: on RocksDB in bulk (``app.kafka.fastpath``: a
   WriteBatch per partition and step of ``STEP_KEYS`` keys, ``agents.flush_write``, with
   reads but not the agent let through between steps, records straight to the producer,
   the persisted offset once per partition), else by Faust's table writes; both tables
   are written before either overlay is dropped, so a read sees both new values or
   neither;
3. moves the written values from the overlays into the tables' read caches
   (``tables.documents.ReadCache``, dropped on every rebalance), waits until the broker has
   every changelog record, and only then releases those partitions' held acks
   (``app.kafka.intake.release``), so Faust's next commit may move past them.

A crash anywhere before step 3's release leaves those offsets uncommitted: the events are
redelivered against the last flushed state (the store may be ahead of the changelog, as
before: the rules' dedupe turns those into rewrites, see ``agents.customer_state.apply_event``).
Partitions are independent in this: a partition's offsets are released only by a flush that
wrote all its customers' values decided from those events. So a customer changed many
times between flushes costs one record per table, not one per batch. Webhook requests are
still sent (and acknowledged) per batch, before its states enter the overlays.
"""
from __future__ import annotations

import asyncio
import logging
import time

from agents.flush_schedule import ALL, FlushSchedule
from agents.flush_write import FlushWrites, changelog_durable
from app.consistency import failpoints
from app.kafka import fastpath, fenced
from app.kafka.intake import abandon, events_in, release
from app.observability import metrics
from tables.documents import cache_of, overlay_of

log = logging.getLogger(__name__)

#: A value that leaves the key's entry in that table as it is.
KEEP = object()


class WriteBack(FlushWrites):
    """Changed keys of several tables since the last flush, and the records they came from."""

    def __init__(self, app, tables, interval_s: float, max_keys: int, first=None):
        self.app, self.tables = app, tuple(tables)
        #: Written (changelog acknowledged) before the tables: ``agents.kpis.KpiRows``.
        self.first = first
        self.interval_s, self.max_keys = interval_s, max_keys
        self.layers = [overlay_of(table) for table in self.tables]
        self.newest = [newest for newest, _ in self.layers]  # one per table, as ``put`` takes
        self.caches = [cache_of(table) for table in self.tables]
        self.last_event: dict = {}  # key -> its latest record (changelog partition)
        self.held: dict = {}  # partition -> acks (app.kafka.intake) waiting for its flush
        self.stamps: dict = {}  # partition -> Kafka timestamps (ms) of its held state changes
        self.schedule = FlushSchedule(interval_s)
        self.lock = asyncio.Lock()
        #: Set while no flush is writing: the agent applies rules only while it is
        #: (``pause``), so the flush may hand the loop to reads between its steps.
        self.open = asyncio.Event()
        self.open.set()
        #: Lists of documents that left the overlays or the read caches (``retire``), freed
        #: after the flush (``free_retired``).
        self.retired: list = []
        #: Clear while the agent enters a batch's results (``entering``): its KPI rows, its
        #: customers' states and its acks go in together, so a flush takes (or abandons) all
        #: of a batch or none of it, while reads still run between the agent's steps.
        self.settled = asyncio.Event()
        self.settled.set()

    def put(self, key, values, record) -> None:
        """``values``: one per table, a document, None (delete) or ``KEEP``; ``record``: the
        key's last record (its partition is the changelog's)."""
        for newest, value in zip(self.newest, values, strict=True):
            if value is not KEEP:
                newest[key] = value
        self.last_event[key] = record

    def entering(self) -> None:
        """The agent starts entering a batch's results: no flush takes anything until
        ``entered``."""
        self.settled.clear()

    def entered(self) -> None:
        self.settled.set()

    async def _until_settled(self) -> None:
        while not self.settled.is_set():
            await self.settled.wait()

    def add_events(self, acks, stamps=None) -> None:
        """Hold a batch's ``acks`` (``app.kafka.intake``: its states are in the overlays)
        until their partition's flush releases them; ``stamps``: ``{partition: [Kafka
        timestamps, ms]}`` of the records that changed a state, observed as freshness
        (durable) once flushed."""
        held, started = self.held, []
        for ack in acks:
            waiting = held.get(ack.partition)
            if waiting is None:
                waiting = held[ack.partition] = []
                started.append(ack.partition)
            waiting.append(ack)
        for partition, times in (stamps or {}).items():
            self.stamps.setdefault(partition, []).extend(times)
        metrics.PENDING.set(sum(map(events_in, held.values())))
        self.schedule.changed(started, time.monotonic())

    def forget(self) -> list:
        """Drop everything not flushed yet, without acking (tests reset with this); returns
        the held acks."""
        held = [ack for acks in self.held.values() for ack in acks]
        for layer in self.layers:
            for values in layer:
                values.clear()
        self.last_event.clear()
        self.held.clear()
        self.stamps.clear()
        self.schedule.forget()
        self.drop_caches()
        if self.first is not None:
            self.first.forget()
        return held

    def abandon(self, taken: list, why: Exception) -> None:
        """The write lease ended while the group changes (``app.kafka.fenced``): drop every
        value not written and forget the held events without acking them, so no offset
        past the last written state is committed and the next owner applies them again.
        The local store may be ahead of the changelog, as after a crash (see above)."""
        for _, flushing in self.layers:
            flushing.clear()
        acks = taken + self.forget()
        abandon(self.app, acks)
        dropped = events_in(acks)
        metrics.ABANDONED.inc(dropped)
        metrics.PENDING.set(0)
        log.warning("write-back: %s; dropped the unwritten state of %d events (not "
                    "committed: the partitions' next owner applies them again)", why, dropped)

    def full(self) -> bool:
        """``max_keys`` customers wait: the agent flushes before its next batch."""
        return len(self.last_event) >= self.max_keys

    def due(self):
        """``ALL``, the partitions to flush now, or ``[]`` (``agents.flush_schedule``)."""
        app = self.app
        return self.schedule.due(time.monotonic(),
                                 self.full() or app.rebalancing or app.should_stop)

    async def flush_if_due(self) -> None:
        partitions = self.due()
        if partitions is ALL or partitions:
            await self.flush(partitions)

    async def flush(self, partitions=ALL) -> int:
        """Write the waiting values of ``partitions`` (``ALL``: every one), make the
        changelog durable, release their events."""
        async with self.lock:
            started = time.perf_counter()
            bulk, held = self.bulk(), []
            try:
                if bulk:  # nothing enters the store unless the write lease holds
                    await fenced.wait_lease(self.app)
                await self._until_settled()  # no await from here to the take
                self.schedule.flushing(partitions, time.monotonic())
                events, held, stamps = self.take(partitions)
                if self.first is not None:
                    await self.first.write(self.app, *self.first.take(partitions))
                    failpoints.hit("flush.after_kpis")
                if bulk:
                    written = await self.write_bulk(events)
                else:
                    written = await self.write_each(events)
            except fenced.Fenced as exc:
                await self._until_settled()  # forget whole batches, never half of one
                self.abandon(held, exc)
                return 0
            await changelog_durable(self.app)
            failpoints.hit("flush.after_changelog")
            release(self.app, held)
            metrics.PENDING.set(sum(map(events_in, self.held.values())))
            metrics.FRESHNESS.observe_ages([t / 1000 for t in stamps if t is not None],
                                           "durable")
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            await self.free_retired()  # after the release: the commit does not wait for it
            return written

    def take(self, partitions) -> tuple:
        """No await: the keys of ``partitions`` move from the newest overlays to the
        flushing ones, with their records and held acks. Returns ``({key: its last
        record}, held acks, stamps)``."""
        if partitions is ALL:
            events, self.last_event = self.last_event, {}
            held = [ack for acks in self.held.values() for ack in acks]
            stamps = [t for times in self.stamps.values() for t in times]
            self.held, self.stamps = {}, {}
            for newest, flushing in self.layers:
                flushing.update(newest)
                newest.clear()
            return events, held, stamps
        chosen = set(partitions)
        last_event = self.last_event
        events = {key: record for key, record in last_event.items()
                  if record.partition in chosen}
        for key in events:
            del last_event[key]
        held, stamps = [], []
        for partition in chosen:
            held.extend(self.held.pop(partition, ()))
            stamps.extend(self.stamps.pop(partition, ()))
        for newest, flushing in self.layers:
            for key in events:
                value = newest.pop(key, KEEP)
                if value is not KEEP:
                    flushing[key] = value
        return events, held, stamps

    async def pause(self) -> None:
        """The agent's yield: the loop to reads and heartbeats, and no further while a
        flush is writing (``write_bulk``)."""
        await asyncio.sleep(0)
        if not self.open.is_set():
            await self.open.wait()

    def bulk(self) -> bool:
        return self.app.producer.state == "running" and all(map(fastpath.supports, self.tables))
