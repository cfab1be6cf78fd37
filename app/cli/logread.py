"""Reading Persona's topics from the command-line tools (persona-reconcile, persona-shadow).

- ``end_offsets``: the offset after each partition's last record. The bundled broker's
  ListOffsets is low for batched producers (BROKER.md), so with the compat switch on they
  are corrected from fetch high watermarks (``app.kafka.broker_compat``), as
  ``persona-redrive`` does.
- ``read_to``: every record of a topic below the given end offsets, in offset order per
  partition (nothing produced later is read).
- ``wait_committed``: until a consumer group has committed at least the given offsets. The
  customers agent commits an ``events`` offset only after the flush that made its states
  durable in the changelogs (``agents/writeback.py``), so from then on the changelogs hold
  everything below it. The group is asked with a consumer that never subscribes (no join,
  no rebalance of the workers).
- ``partition_for``: the partition the default partitioner gives a key (what producers and
  the workers' routing use).
"""
from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from app.kafka.broker_compat import true_end_offsets

_PARTITIONER = DefaultPartitioner()


def auth() -> dict:
    """The login of every client the tools open (``app.kafka.login``, from KAFKA_*)."""
    from app.settings import settings
    return settings.kafka_auth.aiokafka()


def partition_for(key: bytes, partitions: int) -> int:
    every = list(range(partitions))
    return _PARTITIONER(key, every, every)


def reader(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, **auth(), enable_auto_commit=False,
                            group_id=None, auto_offset_reset="earliest",
                            max_partition_fetch_bytes=4 << 20, fetch_max_wait_ms=100)


async def partitions(bootstrap: str, topic: str) -> list[int]:
    """The partitions of ``topic`` ([] if it does not exist), asked by name: Kafka answers a
    metadata request only about the topics it names, and a consumer's own metadata names
    none until it subscribes (the bundled broker answered with every topic)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth())
    await admin.start()
    try:
        found = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in found if t["topic"] == topic and t["error_code"] == 0
                  for p in t["partitions"])


async def end_offsets(consumer: AIOKafkaConsumer, bootstrap: str, topic: str,
                      compat: bool) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    if compat:
        ends = await true_end_offsets(bootstrap, ends)
    return {tp.partition: end for tp, end in ends.items()}


async def start_offsets(consumer: AIOKafkaConsumer, bootstrap: str,
                        topic: str) -> dict[int, int]:
    """The first offset still on each partition (above 0 once retention deleted records)."""
    tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
    starts = await consumer.beginning_offsets(tps) if tps else {}
    return {tp.partition: start for tp, start in starts.items()}


async def read_to(bootstrap: str, topic: str, ends: dict[int, int], timeout: float = 120.0):
    """Yield the records of ``topic`` below ``ends`` ({partition: end offset}), with a
    consumer of its own (one consumer re-assigned from topic to topic read nothing here)."""
    tps = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
    if not tps:
        return
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        todo = set(tps)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to {ends} in {timeout}s")
            batch = await consumer.getmany(*todo, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp.partition]:
                        yield record
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp.partition]:
                    todo.discard(tp)
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str, parts) -> dict[int, int]:
    """{partition: committed offset} of ``group`` on ``topic`` (-1: none yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **auth(), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in parts:
            offset = await consumer.committed(TopicPartition(topic, p))
            out[p] = -1 if offset is None else offset
        return out
    finally:
        await consumer.stop()


async def wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                         timeout: float) -> dict[int, int]:
    """Poll until ``group`` committed at least ``ends`` on every partition; TimeoutError."""
    deadline = time.monotonic() + timeout
    done: dict = {}
    while True:
        try:
            done = await committed(bootstrap, group, topic, ends)
        except Exception:  # noqa: BLE001 - the coordinator may be busy with a rebalance
            done = {}
        if all(done.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return done
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumer group {group} has not committed up to {ends} on "
                               f"{topic} within {timeout}s (committed: {done})")
        await asyncio.sleep(0.5)
