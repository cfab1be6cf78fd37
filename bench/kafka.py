"""Kafka-side helpers: batched pre-fill, raw consume baseline, group progress, changelogs.

The bundled broker answers ListOffsets(latest) with "first offset of the last batch
+ 1" (BROKER.md), so no end offset here comes from ListOffsets: the end of ``events``
is what ``prefill`` counted per partition (checked against the offsets the broker
acknowledged), and a changelog's end is the high watermark of a fetch response
(correct on this broker). ListOffsets is only used as a lower bound to seek near the end.
"""
from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.cli.logread import partitions

GROUP = "persona"  # the Faust app id is the consumer group
CHANGELOGS = ("persona-sessions-changelog", "persona-profiles-changelog")
NAIVE_GROUP = "persona-naive"  # bench/naive/app.py
NAIVE_CHANGELOGS = ("persona-naive-sessions-changelog", "persona-naive-profiles-changelog")


async def create_topic(bootstrap: str, topic: str, partitions: int,
                       configs: dict | None = None) -> None:
    """``configs``: topic settings given at creation (``{"retention.ms": ...}``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def prefill(bootstrap: str, topic: str, records, partitions: int,
                  configs: dict | None = None) -> tuple[dict, float]:
    """Produce ``records`` [(key, value)] batched; return ({partition: count}, seconds).
    ``configs``: settings of the topic if this creates it."""
    await create_topic(bootstrap, topic, partitions, configs)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = [await producer.send(topic, value, key=key) for key, value in records]
        await producer.flush()
        metas = await asyncio.gather(*futs)
    finally:
        await producer.stop()
    elapsed = time.perf_counter() - t0
    counts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for m in metas:
        counts[m.partition] = counts.get(m.partition, 0) + 1
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    if any(ends[p] < counts[p] for p in counts):
        raise RuntimeError(f"acknowledged offsets {ends} below produced counts {counts}")
    return ends, elapsed


async def raw_consume(bootstrap: str, topic: str, ends: dict) -> float:
    """Read ``topic`` from the start to the produced ends with a bare consumer: msgs/s."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
                                fetch_max_bytes=16 << 20)
    tps = [TopicPartition(topic, p) for p in ends]
    consumer.assign(tps)
    await consumer.start()
    try:
        await consumer.seek_to_beginning(*tps)
        want, seen = sum(ends.values()), 0
        t0 = time.perf_counter()
        while seen < want:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(v) for v in batch.values())
            if time.perf_counter() - t0 > 120:
                raise TimeoutError(f"raw consume read {seen} of {want}")
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


async def committed(bootstrap: str, topic: str, group: str = GROUP) -> dict:
    """{partition: committed offset} of the Faust consumer group ``group`` on ``topic``."""
    # The admin client's OffsetFetch version is not decoded right on this broker; a
    # consumer with the group id that never subscribes (no join) asks the same question.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in await partitions(bootstrap, topic):
            out[p] = await consumer.committed(TopicPartition(topic, p))
        return {p: -1 if o is None else o for p, o in out.items()}
    finally:
        await consumer.stop()


async def wait_consumed(bootstrap: str, topic: str, ends: dict, timeout: float,
                        alive=lambda: True, group: str = GROUP) -> float:
    """Poll the group's committed offsets until every partition reached its produced end.

    Every event has then been processed; its table updates may still sit in Faust's
    producer buffer (see ``settled_changelogs``). Returns the wall time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = await committed(bootstrap, topic, group)
        except Exception:  # noqa: BLE001 - the coordinator may be busy rebalancing
            done = {}
        if all(done.get(p, -1) >= end for p, end in ends.items()):
            return time.time()
        if not alive():
            raise RuntimeError("a worker exited during ingest")
        await asyncio.sleep(0.5)
    raise TimeoutError(f"group did not reach the end offsets in {timeout}s: {done} vs {ends}")


async def settled_changelogs(bootstrap: str, quiet: float = 2.0, timeout: float = 300,
                             topics=CHANGELOGS) -> dict:
    """``changelog_stats`` once the changelogs stopped growing for ``quiet`` seconds.

    A committed end offset does not prove every table update was produced: Faust's
    ``ProducerBuffer.flush()`` (awaited before each commit) returns when no buffered
    message was handed to aiokafka within 0.1 s, so under load the commit can run
    ahead of changelog records still waiting in Faust's buffer.
    """
    deadline = time.monotonic() + timeout
    last = await changelog_stats(bootstrap, topics)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await changelog_stats(bootstrap, topics)
        if now["records"] != last["records"]:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return last


async def changelog_stats(bootstrap: str, topics=CHANGELOGS) -> dict:
    """Records (fetch high watermarks) and first/last record timestamps of the changelogs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    records, first, last = 0, None, None
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions(bootstrap, t)]
        consumer.assign(tps)
        lower = await consumer.end_offsets(tps)  # ListOffsets: a lower bound on this broker
        for tp in tps:
            if lower[tp] == 0:
                continue
            consumer.seek(tp, 0)
            got = (await consumer.getmany(tp, timeout_ms=5000, max_records=1)).get(tp, [])
            if got:
                first = min(first or got[0].timestamp, got[0].timestamp)
            consumer.seek(tp, max(0, lower[tp] - 1))
            end, newest = None, None
            deadline = time.monotonic() + 30
            while (end is None or newest is None or newest + 1 < end) \
                    and time.monotonic() < deadline:
                batch = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
                end = consumer.highwater(tp)
                for r in batch:
                    newest = r.offset
                    last = max(last or r.timestamp, r.timestamp)
                if not batch and end is not None and newest is None:
                    break
            records += end or 0
    finally:
        await consumer.stop()
    return {"records": records, "first_ts": (first or 0) / 1000, "last_ts": (last or 0) / 1000}
