"""When this worker last had its group membership confirmed by the group coordinator.

The bounded-staleness rule (``app.rules.staleness``) needs the send time of the newest
heartbeat the coordinator accepted. aiokafka keeps that only in a local variable of its
heartbeat loop, so ``install`` wraps two private methods of its ``GroupCoordinator``:

- ``_do_heartbeat``: True when the coordinator answered "no error" (or "rebalance in
  progress", which still keeps the member in the group); the time it was *sent* is kept,
  not the time of the answer, because the coordinator counts the session from when it
  received it (later), so the worker's bound never ends after the coordinator's;
- ``_do_rejoin_group``: a completed join + sync is a confirmation too (the heartbeat loop
  is stopped during a rebalance and sends its next heartbeat one interval after it); the
  time the join started is kept, again the earlier side;
- ``CoordinatorGroupRebalance._send_sync_group_request``: an accepted SyncGroup confirms
  the member when it was sent. A join can take seconds (the coordinator waits for the other
  members; the bundled broker's takes ~7 s), and the join's start alone would leave a worker
  that just joined with no write lease (``app.rules.staleness``) until its first heartbeat.

Only the consumer of this app's group counts (``group_id``): a tool's group consumer in
the same process would say nothing about this worker's partitions. Pinned by
``tests/agents/test_kafka_internals.py``.
"""
from __future__ import annotations

import time
from typing import Optional

from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator

from app.rules.staleness import vouched

#: ``time.monotonic()`` when the newest confirmation was sent; None before the first.
last: Optional[float] = None
_originals: dict = {}
_group = ""


def mark(sent: float) -> None:
    global last
    if last is None or sent > last:
        last = sent


def in_contact(bound_s: float) -> bool:
    """The coordinator confirmed this worker's membership within ``bound_s`` (one float
    comparison: the read path asks on every lookup)."""
    return vouched(last, time.monotonic(), bound_s)


#: (class, method, whether its result confirms the member): the three confirmations above.
WRAPPED = (
    (GroupCoordinator, "_do_heartbeat", bool),
    (GroupCoordinator, "_do_rejoin_group", bool),
    (CoordinatorGroupRebalance, "_send_sync_group_request", lambda assignment: assignment is not None),
)


def _marking(name: str, confirms):
    """``name``'s original (looked up per call), marking its send time when it confirms."""
    async def wrapper(self, *args):
        sent = time.monotonic()
        result = await _originals[name](self, *args)
        if confirms(result) and self.group_id == _group:
            mark(sent)
        return result
    wrapper.__name__ = wrapper.__qualname__ = name
    return wrapper


def install(app) -> None:
    """Wrap the coordinator's heartbeat, rejoin and sync for ``app``'s consumer group (Faust's
    group id is the app id); once: a second install only re-targets the group."""
    global _group
    _group = app.conf.id
    if _originals:
        return
    for owner, name, confirms in WRAPPED:
        _originals[name] = getattr(owner, name)
        setattr(owner, name, _marking(name, confirms))


def uninstall() -> None:
    """Put aiokafka's methods back (tests)."""
    for owner, name, _ in WRAPPED:
        if name in _originals:
            setattr(owner, name, _originals[name])
    _originals.clear()
