"""True end offsets on the bundled broker, so its producers may batch (compat switch only).

Tansu answers ListOffsets(latest) with "first offset of the last record batch + 1"
(BROKER.md). Faust takes a changelog partition's end offset from ListOffsets when it
restores a table: with batched changelog records the restore would stop short and the
next rebalance would fail Faust's consistency check. Fetch responses carry the correct
high watermark, so for every non-empty partition this fetches once from the last
batch's first record and takes the high watermark from the answer. With it the
producer no longer needs ``max_batch_size=1`` (~4.2k records/s) on the bundled broker.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 10.0
_list_offsets = AIOKafkaConsumerThread._highwaters


async def true_end_offsets(bootstrap, ends: dict) -> dict:
    """``ends`` (ListOffsets answers) corrected with fetch high watermarks."""
    probe = {tp for tp, end in ends.items() if end}
    if not probe:
        return dict(ends)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, ends[tp] - 1)
        deadline = asyncio.get_running_loop().time() + PROBE_TIMEOUT_S
        while any(consumer.highwater(tp) is None for tp in probe):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no fetch answer for the high watermark of "
                                   f"{[tp for tp in probe if consumer.highwater(tp) is None]}")
            await consumer.getmany(*probe, timeout_ms=200)
        return {tp: max(end, consumer.highwater(tp) or 0) if tp in probe else end
                for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def _highwaters(self, partitions):
    ends = await _list_offsets(self, partitions)
    if self.consumer.in_transaction:
        return ends
    bootstrap = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
    fixed = await true_end_offsets(bootstrap, dict(ends))
    if fixed != ends:
        log.debug("end offsets corrected from fetch high watermarks: %s", fixed)
    return fixed


def install() -> None:
    AIOKafkaConsumerThread._highwaters = _highwaters
