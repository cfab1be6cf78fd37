"""Pure parsing of worker log text (no files, no processes): timestamps and marks.

- ``line_time``: the wall time of a Faust/mode log line ``[2026-11-27 14:55:29,508] ...``.
- ``bulk_restores``: the ``bulk restore: N changelog records in Xs (R/s)[; interrupted]``
  lines ``app/kafka/restore.py`` logs, one per recovery of active partitions.
- ``restore_window``: the restore figures of one recovery: from the bulk-restore lines
  when there are any, else from Faust's own marks ("Restoring state from changelog
  topics" .. "Done reading from changelog topics"; e.g. an ``--app-root`` checkout from
  before the bulk restore).
- ``count``: occurrences of a warning, e.g. Faust's ``producer buffer full``.
"""
from __future__ import annotations

import re
from datetime import datetime

BULK = re.compile(r"bulk restore: (\d+) changelog records in ([0-9.]+)s(.*)$")
RESTORE_FROM = "Restoring state from changelog topics"
RESTORE_DONE = "Done reading from changelog topics"
ASSIGNED = "Setting newly assigned partitions"
#: faust/transport/producer.py ``ProducerBuffer.wait_until_ebb`` (faust-streaming 0.15.3).
BUFFER_FULL = "producer buffer full"


def line_time(line: str) -> float | None:
    """Epoch seconds of a ``[YYYY-mm-dd HH:MM:SS,mmm]`` prefixed line (local time), or None."""
    if not line.startswith("["):
        return None
    try:
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def marks(text: str, *needles: str) -> dict:
    """Wall time of the last timestamped line containing each needle."""
    found: dict = {}
    for line in text.splitlines():
        for needle in needles:
            if needle in line:
                t = line_time(line)
                if t is not None:
                    found[needle] = t
    return found


def bulk_restores(text: str) -> list[dict]:
    """Every bulk-restore line: {"records", "seconds", "interrupted", "at" (line time)}."""
    out = []
    for line in text.splitlines():
        m = BULK.search(line)
        if m:
            out.append({"records": int(m.group(1)), "seconds": float(m.group(2)),
                        "interrupted": "interrupted" in m.group(3), "at": line_time(line)})
    return out


def restore_window(text: str, started: float, ready: float) -> dict:
    """Restore figures of the log ``text`` of one recovery (worker started/ready wall times).

    Bulk lines: records and seconds are their sums (a rebalance may interrupt one restore
    and a second finishes it); ``end`` is the last line's time. Without them, Faust's marks
    (records unknown here: the caller counts the changelogs), defaulting to start/ready.
    """
    bulk = bulk_restores(text)
    if bulk:
        seconds = sum(b["seconds"] for b in bulk)
        records = sum(b["records"] for b in bulk)
        return {"source": "bulk restore line", "records": records, "restore_s": seconds,
                "records_per_s": records / seconds if seconds > 0 else None,
                "end": bulk[-1]["at"] or ready, "runs": len(bulk),
                "interrupted": sum(b["interrupted"] for b in bulk)}
    m = marks(text, RESTORE_FROM, RESTORE_DONE)
    end = m.get(RESTORE_DONE, ready)
    return {"source": "Faust restore marks" if m else "start to /ready (no restore marks)",
            "records": None, "restore_s": end - m.get(RESTORE_FROM, started), "end": end,
            "records_per_s": None, "runs": 0, "interrupted": 0}


def count(text: str, needle: str = BUFFER_FULL) -> int:
    """Lines containing ``needle``."""
    return sum(needle in line for line in text.splitlines())
