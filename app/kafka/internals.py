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
from mode.utils.futures import notify


@contextlib.contextmanager
def as_current_event(event) -> Iterator[None]:
    """Make ``event`` Faust's current event while the block writes to tables.

    A table write goes to the changelog partition of the *current* event (Faust reads
    the private ``faust.streams._current_event`` context variable). A batch agent
    writes a customer's state after the whole batch, when the current event is the
    batch's last one: this points it at that customer's own last event.
    """
    token = _current_event.set(weakref.ref(event))
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


def hold(events) -> None:
    """Keep the stream's own ack of ``events`` from marking their offsets committable.

    ``Stream.take_events`` acks a batch when the agent asks for the next one; an ack
    only drops one reference of the message, and Faust's consumer commits an offset only
    after the last reference is dropped (``Message.ack`` -> ``on_final_ack`` ->
    ``Consumer.ack``). One more reference per message defers that to ``release``.
    """
    for event in events:
        event.message.incref()


def release(app, messages) -> None:
    """Drop the references ``hold`` took (of the held events' ``message``s): the last one
    acks the offset, as Faust does. Messages, not events: a caller keeps only these between
    hold and release (fewer live objects for the garbage collector, ``app.observability.gc_policy``)."""
    consumer, on_message_out = app.consumer, app.sensors.on_message_out
    for message in messages:
        if message.ack(consumer):
            on_message_out(message.tp, message.offset, message)


def abandon(app, messages) -> None:
    """Forget held ``messages`` without acking them: their offsets are never committed by
    this worker (the next owner reads them again), and Faust's rebalance stops waiting for
    them (``Consumer.wait_empty`` loops while its private ``_unacked_messages`` has any)."""
    consumer = app.consumer
    unacked = consumer._unacked_messages
    for message in messages:
        unacked.discard(message)
    notify(consumer._waiting_for_ack)


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
