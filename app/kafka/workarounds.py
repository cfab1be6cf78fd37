"""Workarounds for three faust-streaming 0.15.3 races that make a worker skip events.

In both, the consumer's position moves past events that no agent processed, and the next
commit moves past them too: the update is lost for good (the chaos test's "profile misses
an early event"). Seen with the bundled broker; the code paths are broker independent.

1. End of table recovery (``Recovery.on_recovery_completed``): Faust resumes the stream
   partitions while the consumer still fetches (it was resumed to read the changelogs),
   awaits the seek to the committed offsets, then resumes flow control, which clears every
   agent's input queue. Events fetched during the seek are thrown away with the queue,
   and the records the fetcher still holds from before the seek are delivered after it, so
   the fetcher's read offset moves past the thrown-away ones and they never come back.
   Faust sends ``on_rebalance_complete`` just before that sequence: stopping the consumer's
   flow there means nothing is delivered until Faust resumes the flow after the seek.

2. Records fetched around a rebalance are dropped by ``Consumer.getmany`` (flow stopped,
   partition not active yet) and Faust relies on a "seek back to the committed offsets".
   aiokafka's ``seek_to_committed`` skips a partition that has no committed offset yet,
   so its position stays after the dropped records. Seek those partitions to their
   beginning, as ``consumer_auto_offset_reset="earliest"`` (Faust's default) means.

3. A topic the worker creates at start is missing from its first assignment (Apache Kafka
   only). CreateTopics returns once the controller has committed the topic; a broker learns
   of it a moment later. Faust creates the topics and subscribes at once, the consumer's
   metadata still lacks the new topic, the group is formed without it, and the consumer
   only sees it at its next metadata refresh, five minutes later: a fresh cluster's first
   worker reports ready and consumes no ``events`` meanwhile. After creating a topic, wait
   (up to ``VISIBLE_TIMEOUT_S``) until a metadata answer lists all its partitions with a
   leader. The bundled broker creates topics synchronously, so this returns at once there.
"""
from __future__ import annotations

import asyncio
import logging

from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import Transport

log = logging.getLogger(__name__)
VISIBLE_TIMEOUT_S = 30.0
_seek_to_committed = ThreadDelegateConsumer.seek_to_committed
_create_topic = Transport._create_topic


async def _seek_to_committed_or_beginning(self):
    committed = await _seek_to_committed(self)
    never_committed = [tp for tp, offset in committed.items()
                       if offset is None and not self._is_changelog_tp(tp)]
    if never_committed and self.app.conf.consumer_auto_offset_reset == "earliest":
        await self._thread.seek_to_beginning(*never_committed)
    return committed


async def _no_fetch_until_seeked(app, **kwargs) -> None:
    app.consumer.stop_flow()  # Faust resumes it at the end of on_recovery_completed


async def _create_topic_then_see_it(self, owner, client, topic, partitions, replication,
                                    **kwargs):
    """Create (or find) the topic, then wait until the metadata lists it; that metadata (for
    ``app.kafka.topic_check``), or None if it never did (Faust ignores what this returns)."""
    await _create_topic(self, owner, client, topic, partitions, replication, **kwargs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_TIMEOUT_S
    while True:
        cluster = await client.fetch_all_metadata()
        found = cluster.partitions_for_topic(topic) or set()
        if len(found) >= partitions and all(
                cluster.leader_for_partition(_tp(topic, p)) not in (None, -1) for p in found):
            return cluster
        if loop.time() > deadline:
            log.warning("topic %r created but not in the cluster metadata after %.0fs",
                        topic, VISIBLE_TIMEOUT_S)
            return None
        await asyncio.sleep(0.05)


def _tp(topic: str, partition: int):
    from aiokafka import TopicPartition
    return TopicPartition(topic, partition)


def install(app) -> None:
    ThreadDelegateConsumer.seek_to_committed = _seek_to_committed_or_beginning
    Transport._create_topic = _create_topic_then_see_it
    app.on_rebalance_complete.connect(_no_fetch_until_seeked)
