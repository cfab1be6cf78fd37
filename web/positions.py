"""``?after=<token>&wait_ms=`` on per-customer reads: read your own writes.

The entry worker checks the parameters (``wanted``: 400 with a field error for a malformed
token, a token without an entry for the customer's ``events`` partition, or a bad
``wait_ms``); the owner then waits (``until_applied``) until it has applied that partition up
to the token's offset (``app.consistency.applied``), at most ``wait_ms``, else answers 503 with
``Retry-After`` and how far it has applied. The token codec is ``app.consistency.positions``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from app.consistency.applied import applied
from app.consistency.positions import BadToken, decode
from app.kafka.internals import committed_offset
from app.main import app
from app.topics import events_topic, partition_of

AFTER, WAIT_MS = "after", "wait_ms"
DEFAULT_WAIT_MS, MAX_WAIT_MS = 1000, 5000
RETRY_AFTER_S = 1
EVENTS = events_topic.get_topic_name()
NOT_THIS_PARTITION = ("the token has no entry for this customer's partition: pass the token "
                      "of a write of this customer")


class Wanted(NamedTuple):
    partition: int
    offset: int
    wait_s: float


def _field_error(view, field: str, message: str):
    return view.json({"error": "invalid request", "fields": {field: [message]}}, status=400)


def wanted(view, request, customer_id: str) -> tuple[Optional[Wanted], object]:
    """(Wanted or None without ``?after=``, None) or (None, an error response)."""
    raw_wait = request.query.get(WAIT_MS)
    if raw_wait is not None and not (raw_wait.isascii() and raw_wait.isdigit()
                                     and int(raw_wait) <= MAX_WAIT_MS):
        return None, _field_error(view, WAIT_MS, f"an integer from 0 to {MAX_WAIT_MS}")
    token = request.query.get(AFTER)
    if token is None:
        return None, None
    try:
        positions = decode(token)
    except BadToken as exc:
        return None, _field_error(view, AFTER, str(exc))
    try:
        partition = partition_of(EVENTS, customer_id.encode())
    except ConsumerNotStarted:
        partition = None
    if partition is None:
        return None, view.json({"error": "unavailable", "detail": "partition assignment not "
                                "known yet"}, status=503,
                               headers={"Retry-After": str(RETRY_AFTER_S)})
    if partition not in positions:
        return None, _field_error(view, AFTER, NOT_THIS_PARTITION)
    wait_ms = DEFAULT_WAIT_MS if raw_wait is None else int(raw_wait)
    return Wanted(partition, positions[partition], wait_ms / 1000), None


def floor(partition: int) -> Optional[int]:
    """Highest offset in this worker's restored state before it applied anything itself:
    below the committed offset it started consuming the partition from."""
    committed = committed_offset(app, TP(EVENTS, partition))
    return None if committed is None else committed - 1


async def until_applied(view, want: Wanted):
    """None once this worker has applied ``want``; a 503 response after ``want.wait_s``."""
    done, position = await applied.wait(want.partition, want.offset, want.wait_s,
                                        lambda: floor(want.partition))
    if done:
        return None
    return view.json({"error": "not yet applied",
                      "detail": "the owner has not applied this partition up to the token yet; "
                                "retry after Retry-After seconds",
                      "partition": want.partition, "after": want.offset, "applied": position},
                     status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
