"""Erase markers: which webhook deliveries an erase cancels (pure: no I/O, no clock).

A marker is what the customers agent stores per erased customer in the ``erasures`` table
(``tables/erasures.py``) when it applies the erase command in order on ``events``:
``{"customer_id", "pos": [partition, offset], "erased_at": ms}``, ``pos`` being the
erase command's own position on ``events``.

Deliveries are compared by **position**, not by time: every outbox request carries
``source``, the ``[partition, offset]`` of the ``events`` record whose processing created
it. A customer's records all sit in one partition and are applied in offset order, so
"created before the erase" is exactly ``source offset < marker offset``. That holds for
requests re-created by a replay after a crash (a replayed older event keeps its old offset,
while its new ``created_at`` would be after the erase) and for redriven DLQ entries (they keep
their ``source``), and it needs no clock agreement between workers. A customer who comes
back after the erase gets events at later offsets, so their new deliveries go out.
Only a request without ``source`` (written before markers existed) falls back to times:
``created_at <= erased_at``.

A marker never moves back: a redelivered older erase (after a crash) leaves a later
marker as it is (``merged``). Markers live as long as the table: the events before an
erase stay erased for good.
"""
from __future__ import annotations

from typing import Optional


def marker(customer_id: str, partition: int, offset: int, now_ms: int) -> dict:
    return {"customer_id": customer_id, "pos": [partition, offset], "erased_at": now_ms}


def merged(old: Optional[dict], new: dict) -> dict:
    """The marker to keep: the one of the later erase (by position, same partition)."""
    if old is None:
        return new
    (op, oo), (np_, no) = old["pos"], new["pos"]
    if op == np_ and oo > no:
        return old
    if op == np_ and oo == no:  # the same erase applied again: keep its first time
        return old
    return new


def cancels(mark: Optional[dict], record: dict) -> bool:
    """True if ``record`` (an outbox request) was created before the erase ``mark``."""
    if mark is None:
        return False
    source = record.get("source")
    if isinstance(source, list) and len(source) == 2 and source[0] == mark["pos"][0]:
        return source[1] < mark["pos"][1]
    created = record.get("created_at")
    return not isinstance(created, int) or created <= mark["erased_at"]
