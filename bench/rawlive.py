"""Freshness baseline: a bare aiokafka consumer at the same live load, with the same CPU per event.

What the freshness figure (bench/freshness.py) is to be read against: after that phase, on
the same broker, the same generated traffic is produced at the same rate for the same time
to a topic of its own (``raw-live``, as many partitions), and a plain ``AIOKafkaConsumer``
in a process of its own (every partition assigned, no group; uvloop; the worker's fetch
wait and minimum) takes it with ``getmany`` and busy-waits ``cost_us`` per record: the worker CPU per event this run
measured in its ingest. No Faust, no state, no web: what is left is the bundled broker,
aiokafka's fetch pipeline and a consumer that is as busy as the worker. Lag = the time the
record is done minus its Kafka timestamp. The target is freshness p99 <= 1 s at 80 % of
the maximum; this shows how much of that the broker and the client alone take up.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import gen, kafka
from bench.capacity import produce_at
from bench.freshness import percentile

TOPIC = "raw-live"


def _consume(bootstrap: str, partitions: int, cost_s: float, until: float, wait_ms: int,
             min_bytes: int, out) -> None:
    import uvloop

    async def main() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    fetch_max_wait_ms=wait_ms, fetch_min_bytes=min_bytes,
                                    auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition(TOPIC, p) for p in range(partitions)])
        lags, busy = [], 0.0
        try:
            while time.time() < until:
                got = await consumer.getmany(timeout_ms=500)
                t0 = time.perf_counter()
                for records in got.values():
                    for record in records:
                        end = time.perf_counter() + cost_s
                        while time.perf_counter() < end:  # the worker's CPU per event
                            pass
                        lags.append(time.time() - record.timestamp / 1000)
                busy += time.perf_counter() - t0
        finally:
            await consumer.stop()
        out.put((lags, busy))

    uvloop.run(main())


async def _produce(bootstrap: str, rate: float, seconds: float, customers: int) -> float:
    records = gen.generate(customers, max(1, int(rate * seconds)), seed=9,
                           start_ms=int(time.time() * 1000))
    sent, elapsed = await produce_at(bootstrap, records, rate, seconds, TOPIC)  # as freshness
    return sent / elapsed


def measure(bootstrap: str, partitions: int, rate: float, seconds: float, customers: int,
            cost_us: float, wait_ms: int, min_bytes: int = 1) -> dict:
    asyncio.run(kafka.create_topic(bootstrap, TOPIC, partitions))
    out = multiprocessing.get_context("spawn").Queue()
    until = time.time() + seconds + 8  # its start, then the tail of the load
    proc = multiprocessing.get_context("spawn").Process(
        target=_consume, args=(bootstrap, partitions, cost_us / 1e6, until, wait_ms, min_bytes,
                                         out))
    proc.start()
    time.sleep(3)  # started before the first record
    sent = asyncio.run(_produce(bootstrap, rate, seconds, customers))
    lags, busy = out.get(timeout=seconds + 60)
    proc.join(30)
    return {"rate_sent": sent, "cost_us": cost_us, "records": len(lags),
            "busy_share": busy / seconds, "p50_s": percentile(lags, 0.5),
            "p99_s": percentile(lags, 0.99), "max_s": max(lags, default=None)}
