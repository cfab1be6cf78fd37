"""Kafka admin look-ups for the tests, by a plain aiokafka admin client and consumer:
a topic's partitions, replicas and configs as the broker describes them; each partition's
log start and end offsets; every record of a topic with its key; deleting records."""
from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.cli.logread import partitions


def _run(coro):
    return asyncio.run(coro)


def describe(bootstrap: str, names: list[str]) -> dict[str, dict]:
    """``{topic: {"partitions": n, "replicas": r, "leaders": {partition: node id},
    "isr": {partition: [node ids]}, "configs": {name: value}}}`` (the broker's answer,
    defaults included); a missing topic is absent from the result."""
    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            out = {}
            for t in await admin.describe_topics(names):
                if t["error_code"] == 0:
                    parts = t["partitions"]
                    out[t["topic"]] = {"partitions": len(parts),
                                       "replicas": min(len(p["replicas"]) for p in parts),
                                       "leaders": {p["partition"]: p["leader"] for p in parts},
                                       "isr": {p["partition"]: p["isr"] for p in parts}}
            if out:
                answers = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, n) for n in out])
                for answer in answers:
                    for resource in answer.resources:
                        _err, _msg, _type, name, entries = resource[:5]
                        out[name]["configs"] = {e[0]: e[1] for e in entries}
            return out
        finally:
            await admin.close()
    return _run(run())


def offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (log start offset, end offset)}``."""
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            return {tp.partition: (starts[tp], ends[tp]) for tp in tps}
        finally:
            await consumer.stop()
    return _run(run())


def records(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[int, int, bytes, bytes]]:
    """Every record now on ``topic`` as ``(partition, offset, key, value)``, read from each
    partition's log start to its end offset (compacted gaps and all)."""
    ends = offsets(bootstrap, topic)

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = {TopicPartition(topic, p): end for p, (start, end) in ends.items() if end > start}
            if not tps:
                return []
            consumer.assign(list(tps))
            await consumer.seek_to_beginning(*tps)
            out, deadline = [], time.monotonic() + timeout
            while any([await consumer.position(tp) < end for tp, end in tps.items()]):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic} not read to its end offsets in {timeout}s")
                for tp, batch in (await consumer.getmany(timeout_ms=300)).items():
                    out.extend((tp.partition, r.offset, r.key, r.value) for r in batch
                               if r.offset < tps[tp])
            return out
        finally:
            await consumer.stop()
    return _run(run())


def delete_records(bootstrap: str, topic: str, before: dict[int, int]) -> dict[int, int]:
    """Delete the records of each partition before the given offset (Kafka's DeleteRecords,
    what retention does to a log's start); ``{partition: new log start offset}``."""
    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            done = await admin.delete_records(
                {TopicPartition(topic, p): RecordsToDelete(o) for p, o in before.items()})
            return {tp.partition: low for tp, low in done.items()}
        finally:
            await admin.close()
    return _run(run())
