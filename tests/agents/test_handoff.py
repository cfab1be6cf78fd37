"""Pins app.kafka.handoff and app.kafka.intake: the events topic's fetched records handed to
the customers agent a partition at a time, tracked like messages, acked by offset range."""
from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import defaultdict
from types import SimpleNamespace
from weakref import WeakSet

from aiokafka.structs import ConsumerRecord
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from app.kafka import handoff, intake
from app.main import app  # app.kafka.install runs on import

EVENTS = TP("events", 3)


def sha(fun) -> str:
    return hashlib.sha256(inspect.getsource(fun).encode()).hexdigest()


def test_the_copied_getmany_and_the_mirrored_ack_are_the_installed_faust_ones():
    assert sha(handoff._original_getmany) == handoff.GETMANY_SHA256
    assert sha(Consumer.ack) == handoff.ACK_SHA256
    source = inspect.getsource(handoff._original_getmany)
    assert "records, active_partitions = await self._wait_next_records(timeout)" in source
    assert Consumer.getmany is handoff.getmany  # app.kafka.install ran


def rec(offset, tp=EVENTS):
    return ConsumerRecord(tp.topic, tp.partition, offset, 1_700_000_000_000, 0, b"k", b"v",
                          None, 1, 1, ())


def fake_consumer(read_offset=None, commit_every=None):
    gaps, track = [], []

    async def add_gap(tp, start, end):
        gaps.append((tp, start, end))

    read = defaultdict(lambda: None)
    if read_offset is not None:
        read[EVENTS] = read_offset
    fake_app = SimpleNamespace(
        consumer_generation_id=1,
        topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: track.append((tp, hw))))
    consumer = SimpleNamespace(
        app=fake_app, flow_active=True, should_stop=False, _buffered_partitions=set(),
        _read_offset=read, _add_gap=add_gap, _commit_every=commit_every, _n_acked=0,
        _unacked_messages=WeakSet(), suspend_flow=asyncio.Event(),
        highwater=lambda tp: 100)
    return consumer, gaps, track


async def test_a_partitions_records_become_one_queued_unit_the_rest_stays_for_faust():
    consumer, gaps, track = fake_consumer(read_offset=4)
    hand = handoff.Handoff(app, "events")
    other = TP("webhook-deliveries", 0)
    records = {EVENTS: [rec(3), rec(7), rec(8)], other: [rec(1, other)]}
    rest = await hand.hand_off(consumer, records, {EVENTS, other}, 1)
    assert rest == {other: [rec(1, other)]}
    unit = hand.get_nowait()
    assert [r.offset for r in unit.records] == [7, 8] and unit.start == 7  # 3: below the read
    assert gaps == [(EVENTS, 5, 6)]  # the skipped offsets, as Faust's drain records a gap
    assert consumer._read_offset[EVENTS] == 8 and track == [(EVENTS, 100)]
    assert set(consumer._unacked_messages) == {unit}  # tracked like a delivered message


async def test_no_hand_off_when_the_flow_stopped_or_the_partition_is_not_active():
    consumer, _, _ = fake_consumer()
    hand = handoff.Handoff(app, "events")
    assert await hand.hand_off(consumer, {EVENTS: [rec(0)]}, {TP("events", 0)}, 1) == {}
    assert hand.get_nowait() is None  # not an active partition: dropped, as Faust does
    assert await hand.hand_off(consumer, {EVENTS: []}, None, 1) == {}
    assert hand.get_nowait() is None  # nothing fetched for it: no unit
    consumer.flow_active = False
    assert await hand.hand_off(consumer, {EVENTS: [rec(0)]}, None, 1) == {}
    assert hand.get_nowait() is None and consumer._read_offset[EVENTS] is None


async def test_a_full_queue_waits_and_gives_up_when_the_flow_stops():
    consumer, _, _ = fake_consumer()

    async def wait_first(*coros):
        done, pending = await asyncio.wait([asyncio.ensure_future(c) for c in coros],
                                           return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()

    consumer.wait_first = wait_first
    hand = handoff.Handoff(app, "events")
    for i in range(handoff.MAX_UNITS):
        await hand.put(consumer, handoff.Unit(EVENTS, [rec(i)], i))
    blocked = asyncio.ensure_future(hand.put(consumer, handoff.Unit(EVENTS, [rec(99)], 99)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await hand.get()  # the agent takes one: room again
    await asyncio.wait_for(blocked, 1)
    assert hand.queue.qsize() == handoff.MAX_UNITS
    consumer.suspend_flow.set()
    await asyncio.wait_for(hand.put(consumer, handoff.Unit(EVENTS, [rec(100)], 100)), 1)
    assert hand.queue.qsize() == handoff.MAX_UNITS  # given up: fetched again after the seek


async def test_a_rebalance_clears_queued_units_and_they_are_no_longer_tracked():
    consumer, _, _ = fake_consumer()
    hand = handoff.Handoff(app, "events")
    await hand.put(consumer, handoff.Unit(EVENTS, [rec(0)], 0))
    assert len(consumer._unacked_messages) == 1
    app.flow_control.clear()  # what Faust's on_partitions_revoked does to agents' queues
    assert hand.get_nowait() is None and len(consumer._unacked_messages) == 0


def test_spans_tile_a_unit_and_each_is_tracked_until_released():
    consumer, _, _ = fake_consumer()
    unit = handoff.Unit(EVENTS, [rec(5), rec(6), rec(9), rec(10)], 4)
    consumer._unacked_messages.add(unit)
    first, span1 = intake.take(consumer, unit, 3)
    assert [r.offset for r in first] == [5, 6, 9] and (span1.start, span1.offset) == (4, 9)
    assert set(consumer._unacked_messages) == {unit, span1}
    second, span2 = intake.take(consumer, unit, 3)
    assert [r.offset for r in second] == [10] and (span2.start, span2.offset) == (10, 10)
    assert unit.acked and set(consumer._unacked_messages) == {span1, span2}
    acked = []
    handoff_ack, intake.handoff.ack_span = intake.handoff.ack_span, (
        lambda c, tp, start, end: acked.append((tp, start, end)))
    try:
        fake_app = SimpleNamespace(consumer=consumer,
                                   sensors=SimpleNamespace(on_message_out=None))
        intake.release(fake_app, [span1, span2])
        intake.release(fake_app, [span1])  # a second release does nothing
    finally:
        intake.handoff.ack_span = handoff_ack
    assert acked == [(EVENTS, 4, 9), (EVENTS, 10, 10)] and not consumer._unacked_messages


def test_ack_span_is_consumer_ack_of_each_offset(monkeypatch):
    consumer, tp = app.consumer, TP("events", 6)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)  # subscribed
    try:
        handoff.ack_span(consumer, tp, 0, 9)
        assert consumer._new_offset(tp) == 10
        consumer._committed_offset[tp] = 10
        handoff.ack_span(consumer, tp, 8, 14)  # below the committed offset: left out
        handoff.ack_span(consumer, tp, 12, 15)  # 12-14 acked already: once only
        assert sorted(consumer._acked[tp]) == list(range(10, 16))
        assert consumer._new_offset(tp) == 16
    finally:
        for attr in ("_acked", "_acked_index", "_committed_offset"):
            getattr(consumer, attr).pop(tp, None)


async def test_batches_cut_units_at_max_and_wait_within_for_more():
    consumer, _, _ = fake_consumer()
    hand = handoff.Handoff(app, "events")
    fake_app = SimpleNamespace(consumer=consumer, monitor=SimpleNamespace(stream_inbound_time={}))
    await hand.put(consumer, handoff.Unit(EVENTS, [rec(i) for i in range(5)], 0))
    other = TP("events", 4)
    await hand.put(consumer, handoff.Unit(other, [rec(i, other) for i in range(2)], 0))
    gen = intake._from_handoff(fake_app, hand, 3, 0.05)
    records, acks = await gen.__anext__()
    assert [r.offset for r in records] == [0, 1, 2] and [a.offset for a in acks] == [2]
    records, acks = await gen.__anext__()  # the rest of one unit, then the next, then waits
    assert [(r.partition, r.offset) for r in records] == [(3, 3), (3, 4), (4, 0)]
    records, acks = await gen.__anext__()  # one record left; nothing more within 50 ms
    assert [(r.partition, r.offset) for r in records] == [(4, 1)]
    assert set(fake_app.monitor.stream_inbound_time) == {EVENTS, other}
    await gen.aclose()


async def test_when_the_flow_stops_the_rest_of_a_unit_is_dropped_not_taken():
    consumer, _, _ = fake_consumer()
    hand = handoff.Handoff(app, "events")
    fake_app = SimpleNamespace(consumer=consumer, monitor=SimpleNamespace(stream_inbound_time={}))
    await hand.put(consumer, handoff.Unit(EVENTS, [rec(i) for i in range(5)], 0))
    gen = intake._from_handoff(fake_app, hand, 2, 0.01)
    records, (span,) = await gen.__anext__()
    assert [r.offset for r in records] == [0, 1]
    consumer.suspend_flow.set()  # a rebalance: offsets 2-4 are fetched again after the seek
    await hand.put(consumer, handoff.Unit(TP("events", 4), [rec(0, TP("events", 4))], 0))
    later = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0.02)
    assert not later.done() and set(consumer._unacked_messages) == {span}  # only the taken
    consumer.suspend_flow.clear()
    await hand.put(consumer, handoff.Unit(EVENTS, [rec(9)], 9))
    records, _ = await asyncio.wait_for(later, 1)
    assert [r.offset for r in records] == [9]
    await gen.aclose()


def test_a_faust_message_held_by_a_reference_is_acked_on_release():
    """Faust's path (test context): take_events' ack drops one reference; release the other."""
    acked, out = [], []
    message = ConsumerMessage("events", 0, 7, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # the stream's reference, as when the event was delivered
    message.incref()  # the hold (intake.batches)

    def consumer_ack(m):  # what Consumer.ack does with the final ack
        m.acked = True
        acked.append(m.offset)
        return True

    consumer = SimpleNamespace(ack=consumer_ack)
    fake = SimpleNamespace(consumer=consumer,
                           sensors=SimpleNamespace(on_message_out=lambda *a: out.append(a[1])))
    assert message.ack(consumer) is False and acked == []  # the stream's own ack
    intake.release(fake, [message])
    assert acked == [7] and out == [7]
    intake.release(fake, [message])  # a second release does nothing
    assert acked == [7]
    record = intake.record_of(message)
    assert (record.partition, record.offset, record.timestamp, record.value) == (0, 7, 0, b"v")
