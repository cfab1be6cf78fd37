"""Every use of a faust-streaming or aiokafka private API outside the two patch modules.

Persona goes around Faust's generic paths in a few places where the job needs it; each
such use is a small function here, pinned by ``tests/agents/test_kafka_internals.py``, and
``app.kafka.check_versions`` logs an error at start when the installed versions are not
the ones these were written for. The monkeypatches themselves live beside this module:
``app.kafka.workarounds`` (two rebalance races) and ``app.kafka.broker_compat`` (the
bundled broker's end offsets).
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterator, Optional

from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event
from faust.types import TP


class _Current:
    """What Faust reads of its current event when a table is written: ``.message``."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, record):
        self.message = record


@contextlib.contextmanager
def as_current_event(record) -> Iterator[None]:
    """Make ``record`` (a Kafka record, ``app.kafka.intake``) Faust's current event's message
    while the block writes to tables.

    A table write goes to the changelog partition of the *current* event (Faust reads
    the private ``faust.streams._current_event`` context variable and its
    ``.message.partition``/``.topic``). A batch agent writes a customer's state after the
    whole batch: this points it at that customer's own last record.
    """
    holder = _Current(record)
    token = _current_event.set(weakref.ref(holder))
    try:
        yield
    finally:
        _current_event.reset(token)


def store_get(table, key) -> Optional[bytes]:
    """The stored value of ``key`` in one store read, None if absent.

    ``table.get`` reads twice (Faust's table is a ``UserDict`` with ``__missing__``:
    a ``__contains__`` check, then the value); ``table.data`` is the store itself.
    """
    return table.data.get(key)


async def drain_producer(producer) -> None:
    """Wait until the broker has every record Faust buffered for sending.

    Faust's ``ProducerBuffer`` (private) holds changelog records until its background
    task sends them; its own pre-commit flush gives up after 0.1 s without progress.
    """
    while producer.buffer.size:
        await producer.buffer.flush()
    await producer.flush()


def owner_url(app, tp: TP) -> Optional[str]:
    """URL of the worker the leader assigned ``tp`` to (the assignor's private map),
    the same map Faust's own ``router`` reads."""
    return app.assignor._tps_url.get(tp)


def fully_restored(app, tp: TP) -> bool:
    """True if this worker's changelog position of ``tp`` has reached its high water.

    Reads the recovery's per-partition maps directly: ``active_remaining()`` copies
    every partition's entry on each call, and reads need one.
    """
    recovery = app.tables.recovery
    highwater, offset = recovery.active_highwaters.get(tp), recovery.active_offsets.get(tp)
    return highwater is None or offset is None or highwater - offset <= 0


def committed_offset(app, tp: TP) -> Optional[int]:
    """The offset this worker last committed (or found committed at assignment) for
    ``tp``, None if none: Faust keeps it in the consumer's private map and has no
    public getter for it."""
    return app.consumer._committed_offset.get(tp)  # a defaultdict: .get adds no entry


def fetched_highwater(app, tp: TP) -> Optional[int]:
    """The high-water mark of ``tp`` in this worker's last fetch answer for it; None before
    the first answer, or when ``tp`` is not (or no longer) assigned to the consumer (aiokafka
    asserts the assignment; a read may race a rebalance)."""
    try:
        return app.consumer.highwater(tp)
    except (AssertionError, AttributeError, KeyError, ConsumerNotStarted):
        return None
