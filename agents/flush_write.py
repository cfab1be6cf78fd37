"""How a flush writes (``agents.writeback.WriteBack`` inherits this): the values a flush took
go to the stores and the changelogs, then leave the overlays for the read caches.

- ``write_bulk``: on RocksDB (``app.kafka.fastpath``), encoded and stored in steps of
  ``STEP_KEYS`` keys, reads let through between steps but not the agent, then every changelog
  record at once;
- ``write_each``: Faust's table writes, key by key (other stores, Faust's test context);
- ``retire`` / ``free_retired`` / ``drop_caches``: the flushed documents move to the read
  caches, and what leaves them is freed a step at a time after the flush;
- ``changelog_durable``: the broker has every changelog record written so far.

Kept apart from the write-back's bookkeeping (what waits, what a flush takes, when the acks
go) because this half only touches the stores, the producer and the caches.
"""
from __future__ import annotations

import asyncio

from app.consistency import failpoints
from app.kafka import fastpath
from app.kafka.internals import as_current_event, drain_producer
from app.observability import metrics
from tables.documents import encode

#: Faust table writes (``write_each``) between two hand-overs of the loop.
YIELD_EVERY = 25
#: Keys encoded per step of a bulk flush. 100 keys of customers with ~16 events held the
#: loop 3-5 ms per step (lookups waited behind it while ingesting); 25 keep a step ~1 ms.
STEP_KEYS = 25
#: Flushed documents dropped per step after a flush (``FlushWrites.free_retired``).
RELEASE_STEP = 50


class FlushWrites:
    """The writing half of ``WriteBack``: needs its ``app``, ``tables``, ``layers``
    (``(newest, flushing)`` overlays per table), ``caches``, ``retired`` and ``open``."""

    async def write_bulk(self, events: dict) -> int:
        """Both tables' stores, then every changelog record at once.

        Encoding and the store writes go in steps of ``STEP_KEYS`` keys, handing the loop to
        reads (a partition's flush of ~1,000 customers held it for 10-400 ms: lookups
        waited behind it), but not to the agent's rules: the agent's next versions of a
        document may be built from the one being flushed, so the agent waits at its next
        ``pause`` until the stores have them. Encoding in steps with the agent running
        between them lost events in the chaos test. Reads only read the overlays, which keep
        every flushed value until ``retire``."""
        records, written = [], []
        self.open.clear()
        try:
            for table, (_, flushing) in zip(self.tables, self.layers, strict=True):
                items = []
                for n, (key, value) in enumerate(list(flushing.items()), 1):
                    items.append((key, None if value is None else encode(value),
                                  events[key].partition))
                    if n % STEP_KEYS == 0:
                        await asyncio.sleep(0)
                recs = []
                for start in range(0, len(items), STEP_KEYS):
                    recs += fastpath.put_local(table, items[start:start + STEP_KEYS])
                    await asyncio.sleep(0)
                records.append(recs)
                written.append(items)
            failpoints.hit("flush.after_local_write")
            self.retire(written)  # no await since the stores have them
        finally:
            self.open.set()
        await asyncio.gather(*(fastpath.send_changelog(self.app, table, recs)
                               for table, recs in zip(self.tables, records, strict=True)))
        for table, recs in zip(self.tables, records, strict=True):
            metrics.CHANGELOG_RECORDS.labels(table.name).inc(len(recs))
        return sum(map(len, records))

    async def write_each(self, events: dict) -> int:
        """Faust's table writes, key by key (other stores, Faust's test context)."""
        written, items = 0, []
        for table, (_, flushing) in zip(self.tables, self.layers, strict=True):
            items.append([])
            for key, value in flushing.items():
                raw = None if value is None else encode(value)
                with as_current_event(events[key]):
                    write(table, key, raw)
                items[-1].append((key, raw, None))
                written += 1
                if written % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            metrics.CHANGELOG_RECORDS.labels(table.name).inc(len(flushing))
        self.retire(items)  # no await: both tables at once
        return written

    def retire(self, written: list) -> None:
        """The flushed documents (now in the stores) leave the overlays for the read caches
        (``written``: per table ``(key, bytes or None, partition)``), but not while a
        rebalance runs: the caches are dropped then (``drop_caches``), here already. The
        rebalance's own signal drops them only after its flush, and the agent finishes the
        batches it took meanwhile: a customer read from an older cached version lost every
        event between it and the flushed one (chaos test).

        Nothing is freed here: what leaves (older cached versions, or the flushed documents
        themselves when not cached) is freed a step at a time once the flush is done
        (``free_retired``). Freeing a whole flush's documents at once (each is a few dozen
        objects) held the loop for 100-200 ms after a flush of every partition: reads and
        the agent waited behind it (py-spy timeline)."""
        keep = not self.app.rebalancing
        if not keep:
            self.drop_caches()
        for (_, flushing), cache, items in zip(self.layers, self.caches, written, strict=True):
            if keep:
                self.retired.append(cache.keep({key: flushing[key] for key, _, _ in items}))
            else:
                self.retired.append(list(flushing.values()))
            flushing.clear()

    async def free_retired(self) -> None:
        """Drop the retired documents ``RELEASE_STEP`` at a time, the loop handed on between
        steps (a document still used elsewhere, by the agent or a cached answer, just loses
        one reference)."""
        while self.retired:
            documents = self.retired[-1]
            step = min(RELEASE_STEP, len(documents))
            for _ in range(step):
                documents.pop()
            if not documents:
                self.retired.pop()
            if step:
                await asyncio.sleep(0)

    def drop_caches(self) -> None:
        """Forget every cached value: this worker's partitions are about to change, and a
        partition may come back changed by another worker. The documents are freed with the
        next flush's (``free_retired``), not all at once here."""
        for cache in self.caches:
            if cache:
                self.retired.append(list(cache.values()))
                cache.clear()

def write(table, key, raw) -> None:
    if raw is not None:
        table[key] = raw
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
