"""Windowed KPI rows of the customers agent: summed per batch, written once per flush.

**Exactly once per applied event.** The agent already tells a redelivery by position
(``_pos`` in each customer document). The KPI rows share that: each row (one ``events``
partition, one window) carries ``_pos``, the offset of the last record folded into it, and
holds every contribution of that partition's records up to it. Every event the agent takes
for a customer touches the row of its window (per window size) even when it adds nothing,
and the flush writes the KPI rows (store, then changelog, acknowledged) *before* any
customer document. So after a crash at any point of a flush:

- a row whose ``_pos`` is at or past a redelivered record already holds that record's
  decision: the record adds nothing to it (the row is written again, so a changelog that
  missed it catches up);
- a row behind the record was not written by that record's flush, hence no customer
  document of that flush was either: the redelivered record meets the same state as the
  first time and the rules give the same contribution.

A redelivery the customer documents recognise (by position or event id) adds nothing, as
in the profiles. **Cost**: a batch groups its contributions per row (one row copy per
row and batch), and a flush writes each changed row once (``app.kafka.fastpath``, as the
documents), so a busy minute costs one record per partition and flush, not per event.

**Expiry** (event time): every ``SWEEP_EVERY_S`` a flush drops, in the partitions it wrote,
the rows that ``app.rules.window_kpis.expired`` says are too old for their partition's
newest row, not counting rows more than a day ahead of the clock (store delete +
changelog tombstone).
"""
from __future__ import annotations

import time

import orjson

from app.kafka import fastpath
from app.kafka.internals import as_current_event, drain_producer, store_get
from app.observability import metrics
from app.rules import window_kpis as wk
from app.rules.events import ERASE, SESSION_TIMEOUT
from tables.kpis import horizon_ms, kpi_tables, layers, parse_key, table_key

SWEEP_EVERY_S = 60.0


def item(record, ev: dict, before: tuple, session, profile, duplicate: bool):
    """What one taken event means for the rows: ``(record, ts, contribution or None)``;
    None for commands (erase, session timeout), which count in no KPI."""
    if ev["type"] in (ERASE, SESSION_TIMEOUT):
        return None
    if duplicate or profile is None:
        return record, ev["ts"], None
    return record, ev["ts"], wk.contribution(before[0], session, before[1], profile, ev)


class KpiRows:
    """Rows changed since the last flush (every read sees them) and their writing."""

    def __init__(self, tables=None):
        self.tables = kpi_tables if tables is None else tables
        self.newest, self.flushing = layers  # (window, partition, start ms) -> row
        self.events: dict = {}  # partition -> its latest record (store and changelog partition)
        self.last_sweep = time.monotonic()

    def current(self, key: tuple):
        for layer in (self.newest, self.flushing):
            row = layer.get(key)
            if row is not None:
                return row
        window, partition, start = key
        table = self.tables[window]
        with as_current_event(self.events[partition]):  # the store reads that partition
            raw = store_get(table, table_key(table, partition, start))
        return None if raw is None else orjson.loads(raw)

    def add_batch(self, items: list) -> None:
        """Fold a batch's items (in offset order; None ones skipped) into the rows."""
        groups: dict = {}
        for entry in items:
            if entry is None:
                continue
            record, ts, delta = entry
            partition = record.partition
            self.events[partition] = record
            for window, (size_ms, _) in wk.WINDOWS.items():
                key = (window, partition, wk.window_start(ts, size_ms))
                groups.setdefault(key, []).append((record.offset, delta))
        for key, contributions in groups.items():
            row = self.current(key)
            pos = row["_pos"] if row is not None else -1
            new = wk.add_all(row or wk.empty_row(), [d for offset, d in contributions
                                                      if d is not None and offset > pos])
            new["_pos"] = max(pos, contributions[-1][0])
            self.newest[key] = new

    def forget(self) -> None:
        self.newest.clear()
        self.flushing.clear()

    def take(self, partitions=None) -> tuple:
        """The rows of ``partitions`` (None: all) to write (called in the write-back's
        no-await step); a row is one partition's, as are the documents it counts."""
        if partitions is None:
            self.flushing.update(self.newest)
            self.newest.clear()
        else:
            for key in [key for key in self.newest if key[1] in partitions]:
                self.flushing[key] = self.newest.pop(key)
        return dict(self.flushing), dict(self.events)

    async def write(self, app, rows: dict, events: dict) -> int:
        """Write ``rows``, have their changelog acknowledged, then sweep expired rows."""
        items: dict = {window: [] for window in self.tables}
        for (window, partition, start), row in rows.items():
            table = self.tables[window]
            items[window].append((table_key(table, partition, start), orjson.dumps(row),
                                  partition))
        written = await self._put(app, items, events)
        self.flushing.clear()
        if time.monotonic() - self.last_sweep >= SWEEP_EVERY_S:
            self.last_sweep = time.monotonic()
            await self._put(app, self.expired(set(events)), events)
        return written

    def expired(self, partitions: set) -> dict:
        """Per window, ``(key, None, partition)`` of the stored rows past the expiry."""
        out: dict = {}
        horizon = horizon_ms()
        for window, table in self.tables.items():
            found: dict = {}
            newest: dict = {}
            for key in list(table.data.keys()):
                partition, start = parse_key(key)
                if partition in partitions:
                    found.setdefault(partition, []).append((start, key))
                    newest[partition] = wk.reference(newest.get(partition), start, horizon)
            out[window] = [((key[0], tuple(key[1])), None, partition)
                           for partition, starts in found.items()
                           for start, key in starts
                           if wk.expired(start, newest[partition], window)]
        return out

    async def _put(self, app, items: dict, events: dict) -> int:
        written = 0
        for window, table_items in items.items():
            if not table_items:
                continue
            table = self.tables[window]
            written += len(table_items)
            metrics.CHANGELOG_RECORDS.labels(table.name).inc(len(table_items))
            if app.producer.state == "running" and fastpath.supports(table):
                records = fastpath.put_local(table, table_items)
                await fastpath.send_changelog(app, table, records)  # acknowledged
                continue
            for key, value, partition in table_items:  # Faust's test context, other stores
                with as_current_event(events[partition]):
                    if value is not None:
                        table.data[key] = value
                    else:
                        table.data.pop(key, None)
                table.send_changelog(partition, key, value, value_serializer="raw")
            if app.producer.state == "running":  # acknowledged before the documents
                await drain_producer(app.producer)
        return written

