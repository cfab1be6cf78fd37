"""Workarounds for two faust-streaming 0.15.3 races that make a worker skip events.

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
"""
from __future__ import annotations

from faust.transport.consumer import ThreadDelegateConsumer

_seek_to_committed = ThreadDelegateConsumer.seek_to_committed


async def _seek_to_committed_or_beginning(self):
    committed = await _seek_to_committed(self)
    never_committed = [tp for tp, offset in committed.items()
                       if offset is None and not self._is_changelog_tp(tp)]
    if never_committed and self.app.conf.consumer_auto_offset_reset == "earliest":
        await self._thread.seek_to_beginning(*never_committed)
    return committed


async def _no_fetch_until_seeked(app, **kwargs) -> None:
    app.consumer.stop_flow()  # Faust resumes it at the end of on_recovery_completed


def install(app) -> None:
    ThreadDelegateConsumer.seek_to_committed = _seek_to_committed_or_beginning
    app.on_rebalance_complete.connect(_no_fetch_until_seeked)
