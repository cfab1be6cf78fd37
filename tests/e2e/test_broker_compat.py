"""app.kafka.broker_compat against the real bundled broker: batched records, true end offsets."""
from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.kafka.broker_compat import true_end_offsets

pytestmark = [pytest.mark.e2e, pytest.mark.brokers("tansu")]


async def test_end_offsets_of_batched_partitions_come_from_fetch_high_watermarks(broker):
    bootstrap = f"127.0.0.1:{broker.port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("compat-probe", 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:  # 40 records in partition 0 and 1 in partition 1, sent in a few batches
        futures = [await producer.send("compat-probe", b"v%d" % i, partition=0) for i in range(40)]
        futures.append(await producer.send("compat-probe", b"one", partition=1))
        for f in futures:
            await f
    finally:
        await producer.stop()
    tps = [TopicPartition("compat-probe", p) for p in range(3)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        listed = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    assert listed[tps[0]] < 40, "the broker's ListOffsets bug is gone: drop app.kafka.broker_compat"
    fixed = await true_end_offsets(bootstrap, listed)
    assert fixed == {tps[0]: 40, tps[1]: 1, tps[2]: 0}
