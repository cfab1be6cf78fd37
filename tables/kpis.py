"""Windowed KPI rows: one Faust windowed table per window size (tumbling, with expiry).

Key: ``(partition of events as a string, Faust window range (start s, end s))``; value: the
row (``app.rules.window_kpis``) as orjson bytes with ``_pos``, the offset of the last
``events`` record folded into it. Each row lives in the changelog partition of the
``events`` partition it sums, so it moves with that partition's customers.

- ``kpis-1m``: 1-minute windows, kept 48 h; ``kpis-1d``: 1-day windows, kept 90 days.
  The changelog topics get Faust's windowed-table settings (compact + delete, retention =
  the expiry).
- Expiry is in *event time* and done by ``agents/kpis.py`` (a partition keeps the windows
  within the expiry of its newest window; windows more than a day ahead of the clock do not
  count as newest, so one event dated years ahead cannot expire a partition's history). Faust's own cleaner compares window ends with
  the wall clock (replayed or backfilled history would vanish at once) and keeps its
  bookkeeping only for keys set through ``table[key] = value`` in this process; rows are
  written straight to the store and changelog instead, so it finds nothing to drop.
"""
from __future__ import annotations

import time

import orjson

from app.main import TOPIC_CONFIG, app
from app.rules.window_kpis import FUTURE_SLACK_MS, WINDOWS, expired, reference
from app.settings import settings


def _windowed(name: str, window: str):
    size_ms, keep = WINDOWS[window]
    table = app.Table(name, default=None, value_type=bytes, partitions=settings.partitions,
                      help=f"KPI rows per events partition, {window} windows",
                      extra_topic_configs=dict(TOPIC_CONFIG))
    return table.tumbling(size_ms / 1000, expires=keep * size_ms / 1000).table


#: Window name (``?window=``) -> its table.
kpi_tables = {"1m": _windowed("kpis-1m", "1m"), "1d": _windowed("kpis-1d", "1d")}

#: Rows the customers agent changed since the last flush, then the rows the running flush
#: writes: ``{(window, partition, start ms): row}``; filled and emptied by agents/kpis.py,
#: read first by ``local_rows`` (as ``tables.documents.overlays`` for the documents).
layers: tuple[dict, dict] = ({}, {})


def table_key(table, partition: int, start_ms: int) -> tuple:
    """The Faust windowed key of a row: (partition, window range of its start)."""
    return (str(partition), table.window.current(start_ms / 1000))


def parse_key(key) -> tuple[int, int]:
    """(partition, window start ms) of a stored key (a list when read back from JSON)."""
    partition, (start, _end) = key
    return int(partition), round(start * 1000)


def horizon_ms() -> int:
    """Window starts after this are no partition's expiry reference (``window_kpis``)."""
    return int(time.time() * 1000) + FUTURE_SLACK_MS


def local_rows(window: str, partitions: set, start_from: int, start_to: int) -> tuple:
    """``({(partition, start ms): row}, {partition: newest window start})`` of
    ``partitions`` held here (flushed or not), for windows starting in ``[start_from,
    start_to)``, without the rows past the expiry that the next sweep drops (so the answer
    does not depend on when it runs). No await: one consistent view."""
    out, newest, horizon = {}, {}, horizon_ms()
    for key, raw in kpi_tables[window].data.items():  # the active partitions' stores
        partition, start = parse_key(key)
        if partition in partitions:
            newest[partition] = reference(newest.get(partition), start, horizon)
            if start_from <= start < start_to:
                out[(partition, start)] = raw
    for layer in reversed(layers):  # the newest wins
        for (name, partition, start), row in layer.items():
            if name == window and partition in partitions:
                newest[partition] = reference(newest.get(partition), start, horizon)
                if start_from <= start < start_to:
                    out[(partition, start)] = row
    rows = {(partition, start): orjson.loads(row) if isinstance(row, bytes) else row
            for (partition, start), row in out.items()
            if not expired(start, newest[partition], window)}
    return rows, {p: s for p, s in newest.items() if s is not None}
