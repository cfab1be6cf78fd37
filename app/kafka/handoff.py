"""Batch hand-off, consumer side: a partition's fetched ``events`` records go to the customers
agent as one unit, not record by record through Faust.

Faust (faust-streaming 0.15.3) turns every fetched record into a ``Message``
(``Consumer.getmany``), hands it to the conductor (``Conductor.on_message``: decode into an
``Event``, track it, put it on the agent's channel queue), and the agent's stream takes it
off that queue (current event, sensors, one ack per event: a reference count whose last
drop appends the offset to the consumer's acked list). The customers agent takes records
in batches and acks a batch only after the write-back's flush, so none of that per-record
work serves it: it was about a third of the worker's CPU per event (py-spy, 1 worker).

``getmany`` here is Faust's ``Consumer.getmany`` (pinned by ``ORIGINAL_SHA256``) with one
step added before its per-record loop: the records of the hand-off's topic leave the
fetched map, each partition's list becoming one ``Unit`` on the hand-off's queue, with what
Faust's loop and its drain (``Consumer._drain_messages``) do per record done once per unit
and in the same way: the flow, generation and active-partition checks, the end offset for
the monitor, records below the read offset dropped, a gap in offsets recorded as Faust's
drain records it, the commit every ``broker_commit_every`` acks, and the read offset set.
Every other topic (the outbox, changelogs) takes Faust's path unchanged.

Tracking: each unit stands in the consumer's unacked set (``Consumer._unacked_messages``,
what ``wait_empty`` waits on at a rebalance or a stop) as a message does, until the agent
has taken all its records (``app.kafka.intake`` then tracks each taken span until its
release). The queue is one of Faust's flow-control queues, cleared at a rebalance as
the agents' channel queues are: a unit still queued then is dropped (and no longer
tracked), its records fetched again from the committed offsets, as Faust's are. A full
queue makes the fetch loop wait, given up when the flow stops, as Faust's delivery is.
"""
from __future__ import annotations

import asyncio
from typing import Optional

from faust.transport.consumer import Consumer, ack_lock
from mode.utils.futures import notify

#: sha256 of ``inspect.getsource`` of the Faust methods copied or mirrored here.
GETMANY_SHA256 = "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e"
ACK_SHA256 = "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f"
_original_getmany = Consumer.getmany
#: Units queued before the fetch loop waits for the agent (a unit is one partition's
#: records of one fetch).
MAX_UNITS = 16
#: The hand-off of the running worker (``serve``), None before the agent started.
HANDOFF: Optional["Handoff"] = None


class Unit:
    """One partition's records of one fetch, in offset order. ``start``: the first offset
    the next span taken from it answers for; ``acked``/``refcount``: what Faust's
    ``wait_empty`` reads of a tracked message."""

    __slots__ = ("tp", "records", "taken", "start", "acked", "refcount", "__weakref__")

    def __init__(self, tp, records: list, start: int):
        self.tp, self.records, self.taken, self.start = tp, records, 0, start
        self.acked, self.refcount = False, 1


class Handoff:
    """The queue between the consumer's fetch loop and the agent, for one topic."""

    def __init__(self, app, topic: str):
        self.app, self.topic = app, topic
        self.queue = app.FlowControlQueue(maxsize=0, clear_on_resume=True)
        self.room = asyncio.Event()  # set while fewer than MAX_UNITS wait
        self.room.set()

    async def hand_off(self, consumer, records: dict, active, generation_id) -> dict:
        """Queue this topic's records of a fetch; the rest of ``records`` for Faust's loop
        ({} if the flow stopped or the generation changed meanwhile, as Faust's loop ends)."""
        topic, app = self.topic, consumer.app
        mine = [tp for tp in records if tp.topic == topic]
        if not mine:
            return records
        rest = {tp: recs for tp, recs in records.items() if tp.topic != topic}
        buffered, read_offset = consumer._buffered_partitions, consumer._read_offset
        acks_enabled = app.topics.acks_enabled_for(topic)
        for tp in mine:
            if not consumer.flow_active or app.consumer_generation_id != generation_id:
                return {}
            if not (active is None or tp in active or tp in buffered):
                continue
            app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            recs, r_offset = records[tp], read_offset[tp]
            if not recs:
                continue
            if r_offset is not None and recs[0].offset < r_offset:
                recs = [r for r in recs if r.offset >= r_offset]
                if not recs:
                    continue
            first = recs[0].offset
            if r_offset and first - r_offset > 1 and acks_enabled:
                await consumer._add_gap(tp, r_offset + 1, first - 1)
            every = consumer._commit_every
            if every is not None and consumer._n_acked >= every:
                consumer._n_acked = 0
                await consumer.commit()
            await self.put(consumer, Unit(tp, recs, first))
            read_offset[tp] = recs[-1].offset
        return rest

    async def put(self, consumer, unit: Unit) -> None:
        """Queue ``unit`` and track it; given up (dropped) when the flow stops meanwhile, as
        Faust's delivery is: a rebalance or a stop seeks back to the committed offsets."""
        queue, suspend = self.queue, consumer.suspend_flow
        while not suspend.is_set() and queue.qsize() >= MAX_UNITS:
            self.room.clear()
            await consumer.wait_first(self.room.wait(), suspend.wait())
            if consumer.should_stop:
                return
        if suspend.is_set():
            return
        consumer._unacked_messages.add(unit)
        queue.put_nowait(unit)

    async def get(self) -> Unit:
        unit = await self.queue.get()
        self.took()
        return unit

    def get_nowait(self) -> Optional[Unit]:
        try:
            unit = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self.took()
        return unit

    def took(self) -> None:
        if self.queue.qsize() < MAX_UNITS:
            self.room.set()


async def getmany(self, timeout: float):
    """Faust 0.15.3's ``Consumer.getmany``; only the hand-off step is added."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    handoff = HANDOFF
    if handoff is not None and records and self.flow_active:  # the added step
        records = await handoff.hand_off(self, records, active_partitions, generation_id)

    records_it = self.scheduler.iterate(records)
    to_message = self._to_message  # localize
    if self.flow_active:
        for tp, record in records_it:
            if not self.flow_active:
                break
            new_generation_id = self.app.consumer_generation_id
            if new_generation_id != generation_id:
                self.log.dev("Generation id changed from %r to %r. Cancelling getmany.",
                             generation_id, new_generation_id)
                break
            if (active_partitions is None or tp in active_partitions
                    or tp in self._buffered_partitions):
                highwater_mark = self.highwater(tp)
                self.app.monitor.track_tp_end_offset(tp, highwater_mark)
                yield tp, to_message(tp, record)
    else:
        self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await self.perform_seek()
        except Exception as ex:
            self.log.warning(f"exception performing seek when flow not active {ex}")


def ack_span(consumer, tp, start: int, end: int) -> None:
    """``Consumer.ack`` of every offset from ``start`` to ``end`` (both included) at once:
    the same lock, checks and bookkeeping, the offsets appended as one range."""
    with ack_lock:
        if not consumer.app.topics.acks_enabled_for(tp.topic):
            return
        try:
            committed = consumer._committed_offset[tp]
            if committed is not None and start < committed:
                start = committed
            if start > end:
                return
            offsets = range(start, end + 1)
            index = consumer._acked_index[tp]
            if not index.isdisjoint(offsets):  # some acked already: only the others
                offsets = [offset for offset in offsets if offset not in index]
            index.update(offsets)
            consumer._acked[tp].extend(offsets)
            consumer._n_acked += len(offsets)
        finally:
            notify(consumer._waiting_for_ack)


def serve(app, topic: str) -> Optional[Handoff]:
    """The hand-off for ``topic`` (the first call makes it), None when not installed.
    Called before the agent subscribes to the topic, so no record of it is fetched for
    Faust's path first."""
    global HANDOFF
    if Consumer.getmany is not getmany:
        return None
    if HANDOFF is None or HANDOFF.app is not app or HANDOFF.topic != topic:
        HANDOFF = Handoff(app, topic)
    return HANDOFF


def install() -> None:
    Consumer.getmany = getmany
