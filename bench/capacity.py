"""The worker's maximum events/s now, which freshness offers a share of (bench/freshness.py).

- ``steady_max``: a backlog of further events of the run's customers, drained with nobody
  producing. By then the customers have a history, and the rules cost more per event on
  longer documents than in the run's ingest from empty state (~10 events a customer).
- ``live_max``: what the worker takes while the load generator produces more than that.
  On this machine the generator and the broker take CPU from the worker while they
  produce, so the drained maximum was more than the worker could take live (a backlog
  grew at 80 % of it, and freshness then only measured its growth).
"""
from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from bench import gen, kafka
from bench.procs import Broker, Worker, cpu_seconds
from bench.scenarios import events_taken

#: The backlog the steady maximum is measured on (``steady_max``): ~5 s of the worker's work.
STEADY_EVENTS = 60_000
#: The live maximum (``live_max``): the load generator offers ``OVER`` × the steady
#: maximum for ``LIVE_S`` seconds; the first ``LIVE_SKIP_S`` are not counted. The counted
#: window must hold the write-back's flushes: the drain before it flushed everything, and a
#: partition is flushed again once its oldest change is ``PERSONA_FLUSH_INTERVAL_S`` (10 s)
#: old. A window of 2-10 s held none: it found 14-16k events/s at 60-70 µs of worker CPU
#: per event, where the same worker sustains ~11k at ~90 µs (per event 85-95 µs before a
#: flush and 100-107 after, at 9,000 events/s offered on customers of the same age).
OVER = 1.25
LIVE_S = 25.0
LIVE_SKIP_S = 10.0


_PARTITIONER = DefaultPartitioner()
_PARTITION_OF: dict = {}  # (key, partitions) -> partition: the keys are the run's customers


async def send_due(producer, records: list, sent: int, rate: float, elapsed: float,
                   topic: str = "events") -> int:
    """Produce the records due by ``elapsed`` seconds at ``rate``/s; the new count sent.

    One record batch per partition per call, built here (the producer's default
    partitioner, so a customer's events land where ``send`` would put them): a
    ``send`` per record cost the load generator ~22 µs of CPU per event, a fifth of a
    core at the rates measured, taken from the worker on this machine."""
    due = min(len(records), int(rate * elapsed))
    if due <= sent:
        return sent
    parts = sorted(await producer.partitions_for(topic))
    batches: dict = {}
    for key, value in records[sent:due]:
        p = _PARTITION_OF.get((key, len(parts)))
        if p is None:
            p = _PARTITION_OF[(key, len(parts))] = _PARTITIONER(key, parts, parts)
        batch = batches.get(p)
        if batch is None:
            batch = batches[p] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            await producer.send_batch(batch, topic, partition=p)
            batch = batches[p] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for p, batch in batches.items():
        await producer.send_batch(batch, topic, partition=p)
    return due


def steady_max(b: Broker, w: Worker, ctx, n: int = STEADY_EVENTS) -> dict:
    """Events/s (and worker CPU per event) the worker reaches now, on a backlog of ``n``
    further events of the run's customers, with nobody producing.

    The run's ingest starts from empty state (~10 events a customer); by now the customers
    have a history, and the rules cost more per event on longer documents (the remembered
    event ids, views, orders). It sets the rate ``live_max`` offers. Timed from the end of
    the pre-fill (the worker takes events meanwhile) to the last one."""
    extra = gen.generate(ctx.customers, n, seed=10, start_ms=int(time.time() * 1000))
    target = events_taken(w) + n
    asyncio.run(kafka.prefill(b.bootstrap, "events", extra, ctx.partitions))
    t0, taken0, cpu0 = time.monotonic(), events_taken(w), cpu_seconds(w.pid)
    deadline = t0 + max(120.0, n / 500)
    while (taken := events_taken(w)) < target and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds, cpu = time.monotonic() - t0, cpu_seconds(w.pid) - cpu0
    measured = taken - taken0
    if taken < target or measured < n / 4:
        raise RuntimeError(f"steady maximum: {measured} of {n} events measured "
                           f"({taken - target + n} taken)")
    return {"events": n, "measured_events": measured, "eps": measured / seconds,
            "worker_cpu_us_per_event": 1e6 * cpu / measured}


async def offer(producer, records: list, rate: float, seconds: float, topic: str = "events",
                tick=None) -> tuple[int, float]:
    """The load generator: ``records`` at ``rate``/s for ``seconds`` (``send_due`` every
    5 ms), ``await tick(elapsed)`` after each step (probes, marks); ``(sent, elapsed s)``."""
    loop = asyncio.get_running_loop()
    t0, sent = loop.time(), 0
    while (elapsed := loop.time() - t0) < seconds:
        sent = await send_due(producer, records, sent, rate, elapsed, topic)
        if tick is not None:
            await tick(elapsed)
        await asyncio.sleep(0.005)
    return sent, loop.time() - t0


async def produce_at(bootstrap: str, records: list, rate: float, seconds: float,
                     topic: str = "events", tick=None) -> tuple[int, float]:
    """``offer`` from a producer of its own (linger 5 ms), flushed before it returns."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        done = await offer(producer, records, rate, seconds, topic, tick)
        await producer.flush()
        return done
    finally:
        await producer.stop()


def live_max(b: Broker, w: Worker, ctx, over: float, seconds: float = LIVE_S) -> dict:
    """Events/s the worker takes while the load generator produces more than that: the
    maximum freshness offers ``SHARE`` of.

    On this machine the load generator and the broker take CPU from the worker while they
    produce, and a drained backlog (``steady_max``) had nobody producing: its maximum
    was more than the worker can take live (the backlog grew at 80 % of it). Here the
    generator offers ``over`` events/s for ``seconds``; the worker's events taken from
    the first ``LIVE_SKIP_S`` to the end are the figure. Then the backlog is drained."""
    marks: dict = {}

    async def mark(elapsed: float) -> None:  # the counter's GET is a blocking call: a thread
        if not marks and elapsed >= LIVE_SKIP_S:
            marks.update(t0=time.monotonic(), n0=await asyncio.to_thread(events_taken, w),
                         cpu0=cpu_seconds(w.pid))
    records = gen.generate(ctx.customers, int(over * seconds), seed=12,
                           start_ms=int(time.time() * 1000))
    sent, _ = asyncio.run(produce_at(b.bootstrap, records, over, seconds, tick=mark))
    t1, n1, cpu1 = time.monotonic(), events_taken(w), cpu_seconds(w.pid)
    settle(w)
    measured = n1 - marks["n0"]
    return {"offered_eps": over, "sent_eps": sent / seconds, "eps": measured / (t1 - marks["t0"]),
            "worker_cpu_us_per_event": 1e6 * (cpu1 - marks["cpu0"]) / max(1, measured)}


def settle(w: Worker, quiet_s: float = 1.0, timeout_s: float = 120.0) -> None:
    """Wait until the worker has taken no event for ``quiet_s``: its backlog is drained."""
    deadline = time.monotonic() + timeout_s
    last, since = events_taken(w), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = events_taken(w)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
