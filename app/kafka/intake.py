"""Batch hand-off, agent side: the customers agent's batches of records, and their acks.

``batches(stream, max_n, within_s)`` yields ``(records, acks)``: up to ``max_n`` records
(the last ones to arrive within ``within_s`` of the first), in offset order per partition,
and what acknowledges them once the write-back has flushed their states (``release``).
A record has aiokafka's ``ConsumerRecord`` fields (``topic``, ``partition``, ``offset``,
``key``, ``value``, ``headers``, ``timestamp`` in milliseconds).

On a worker, the records come from the hand-off (``app.kafka.handoff``): units of one
partition's fetched records, cut into spans of at most ``max_n``. A ``Span`` acks the offsets
it answers for at once (``handoff.ack_span``: from the end of the previous span of its
partition, so offsets the fetch skipped are acked with it, as Faust's gaps are) and stands in
the consumer's unacked set until then, as a held message did, so a rebalance or a stop
still waits for the flush. The agent's own Faust stream is only iterated to subscribe to
the topic.

Elsewhere (Faust's agent test context; the speed-only paths off for untested versions)
they come from Faust's ``take_events``: each event's message is held (one more reference,
so the stream's ack does not make it committable) and released by the same ``release``.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from aiokafka.structs import ConsumerRecord
from faust.types import TopicT
from mode.utils.futures import notify

from app.kafka import handoff


class Span:
    """Offsets ``start``..``offset`` of one partition, acked together on release."""

    __slots__ = ("tp", "partition", "start", "offset", "acked", "refcount", "__weakref__")

    def __init__(self, tp, start: int, offset: int):
        self.tp, self.partition, self.start, self.offset = tp, tp.partition, start, offset
        self.acked, self.refcount = False, 1


def take(consumer, unit, n: int) -> tuple:
    """Up to ``n`` records of ``unit`` and their span (tracked until released)."""
    records = unit.records
    if unit.taken == 0 and len(records) <= n:
        chunk = records
    else:
        chunk = records[unit.taken:unit.taken + n]
    unit.taken += len(chunk)
    span = Span(unit.tp, unit.start, chunk[-1].offset)
    unit.start = span.offset + 1
    unacked = consumer._unacked_messages
    unacked.add(span)
    if unit.taken >= len(records):  # the unit is all in spans now
        untrack(consumer, unit)
    return chunk, span


async def batches(stream, max_n: int, within_s: float) -> AsyncIterator[tuple]:
    channel = stream.channel
    if isinstance(channel, TopicT) and len(channel.topics) == 1:
        hand = handoff.serve(stream.app, channel.topics[0])
        if hand is not None:
            aiter(channel)  # subscribes the topic, as the stream's own iteration would
            async for batch in _from_handoff(stream.app, hand, max_n, within_s):
                yield batch
            return
    async for events in stream.take_events(max_n, within=within_s):
        messages = [event.message for event in events]
        for message in messages:
            message.incref()  # the stream's ack no longer makes it committable
        yield [record_of(message) for message in messages], messages


async def _from_handoff(app, hand, max_n: int, within_s: float) -> AsyncIterator[tuple]:
    consumer, inbound = app.consumer, app.monitor.stream_inbound_time
    loop = asyncio.get_running_loop()
    unit = None
    while True:
        if unit is None:
            unit = await hand.get()
        records, acks, deadline = [], [], None
        while True:
            if consumer.suspend_flow.is_set():
                # A rebalance or a stop: what is not taken yet is dropped as Faust clears its
                # queues (fetched again from the committed offsets), so a large unit does not
                # hold the rebalance up. Taken records still finish their batch.
                untrack(consumer, unit)
                unit = None
                break
            chunk, span = take(consumer, unit, max_n - len(records))
            inbound[unit.tp] = time.monotonic()  # Faust's livelock check reads it
            records.extend(chunk)
            acks.append(span)
            if unit.taken >= len(unit.records):
                unit = hand.get_nowait()
            if len(records) >= max_n:
                break
            if unit is None:
                if deadline is None:
                    deadline = loop.time() + within_s
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    unit = await asyncio.wait_for(hand.get(), remaining)
                except asyncio.TimeoutError:
                    break
        if records:
            yield records, acks


def untrack(consumer, unit) -> None:
    """``unit`` no longer stands in the consumer's unacked set: all its records are in spans,
    or the rest is dropped (never acked, fetched again after the seek)."""
    unit.acked = True
    consumer._unacked_messages.discard(unit)


def release(app, acks) -> None:
    """Ack what ``batches`` handed out with a batch (after the flush made it durable): spans
    by their offsets, held Faust messages by dropping the reference taken (the last one acks
    the offset, as Faust does)."""
    consumer, on_message_out, unacked = app.consumer, app.sensors.on_message_out, None
    for ack in acks:
        if type(ack) is Span:
            if not ack.acked:
                handoff.ack_span(consumer, ack.tp, ack.start, ack.offset)
                ack.acked = True
                if unacked is None:
                    unacked = consumer._unacked_messages
                unacked.discard(ack)
        elif ack.ack(consumer):
            on_message_out(ack.tp, ack.offset, ack)


def events_in(acks) -> int:
    """How many records ``acks`` stand for (a span: its offsets; a held message: one)."""
    return sum(ack.offset - ack.start + 1 if type(ack) is Span else 1 for ack in acks)


def abandon(app, acks) -> None:
    """Forget held ``acks`` without acking them (the write lease ended during a rebalance,
    ``app.kafka.fenced``): their offsets are never committed by this worker (the next owner
    reads them again), and Faust's rebalance stops waiting for them (``Consumer.wait_empty``
    loops while its private ``_unacked_messages`` holds any span or message)."""
    consumer = app.consumer
    unacked = consumer._unacked_messages
    for ack in acks:
        unacked.discard(ack)
    notify(consumer._waiting_for_ack)


def record_of(message) -> ConsumerRecord:
    """A Faust message as the record the agent reads (its timestamp back in milliseconds)."""
    ts = message.timestamp
    return ConsumerRecord(message.topic, message.partition, message.offset,
                          None if ts is None else round(ts * 1000), message.timestamp_type,
                          message.key, message.value, message.checksum,
                          message.serialized_key_size, message.serialized_value_size,
                          message.headers)
