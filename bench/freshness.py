"""Freshness: Kafka record timestamp -> state readable, at 80 % of max throughput.

On the 1-worker compat-on worker (after the recovery phase, so it does not change the
restore figures): first its maximum now (``bench.capacity``: on a backlog of further events
of the same customers, whose documents are longer by then than in the run's ingest from
empty state, and then live, while the load generator produces more than the worker
takes), then events are produced at a fixed rate, ``SHARE`` of the live maximum, for
``seconds``. The load is generated shop traffic of the run's customers. Every
``PROBE_EVERY_S`` a probe event (a ``product_view`` of a new customer ``fresh-<n>``) goes
along with ``ts`` = Kafka record timestamp = the wall time it is sent (ms); one read of
that customer's profile with ``?after=<token of the probe's record>&wait_ms=`` (``_probe``)
answers once the owner has applied it, and its ``as_of`` must be >= ``ts`` (else
``stale``): the latency is that answer minus the record timestamp, so it includes the
producer's linger (5 ms), the worker's batching and the read path. The producer and reads
share the machine with the worker and broker (as the lookup load does). Probes not
readable within ``PROBE_TIMEOUT_S`` are counted as ``unseen``. Then ``bench.rawlive``: the
same load for a bare consumer as busy as the worker live (the baseline).
"""
from __future__ import annotations

import asyncio
import math
import time
import uuid

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from app.consistency import positions
from app.settings import FETCH_MAX_WAIT_MS_COMPAT, FETCH_MIN_BYTES_COMPAT
from bench import capacity, gen, load
from bench.procs import API_KEY, Broker, Worker
from bench.report import FRESHNESS_P99_S

SHARE = 0.8
#: Shares of the live maximum tried, in order, when p99 misses ``FRESHNESS_P99_S`` at ``SHARE``.
LOWER_SHARES = (0.7, 0.6, 0.5)
PROBE_EVERY_S = 0.1
POLL_S = 0.025  # only after an error or an answer other than 200/503
WAIT_MS = 5000  # each probe read waits at the owner up to this long (its maximum)
PROBE_TIMEOUT_S = 30.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def probe_event(cid: str, ts_ms: int) -> bytes:
    return orjson.dumps({"event_id": str(uuid.uuid4()), "type": "product_view",
                         "customer_id": cid, "ts": ts_ms, "v": 1, "product_id": "p-1",
                         "category": "shoes", "price": 10.0})


async def _probe(session, base: str, cid: str, ts_ms: int, sent, out: list, unseen: list,
                 stale: list) -> None:
    """One waiting read per probe: ``?after=<token of the probe's record>&wait_ms=``.

    The owner answers as soon as it has applied the probe's partition up to the probe's
    offset (``app.consistency.applied``: woken by the agent, no polling), so the client adds no load
    that grows with a backlog; a 503 (not applied within ``WAIT_MS``) is asked again at
    once. A 200 whose ``as_of`` is older than the probe breaks the guarantee: ``stale``."""
    meta = await sent  # the broker's acknowledgement: the probe's partition and offset
    url = (base + load.PATH.format(cid)
           + f"?after={positions.encode({meta.partition: meta.offset})}&wait_ms={WAIT_MS}")
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = None
        try:
            async with session.get(url) as r:
                body, status = await r.read(), r.status
                if status == 200:
                    if orjson.loads(body).get("as_of", 0) >= ts_ms:
                        out.append((ts_ms, time.time() - ts_ms / 1000))
                    else:
                        stale.append(cid)
                    return
        except aiohttp.ClientError:
            pass
        if status != 503:
            await asyncio.sleep(POLL_S)  # e.g. a 404 before the partition is assigned
    unseen.append(cid)


async def measure(bootstrap: str, base: str, rate: float, seconds: float, customers: int,
                  tag: str) -> dict:
    records = gen.generate(customers, max(1, int(rate * seconds)), seed=9,
                           start_ms=int(time.time() * 1000))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    seen: list[tuple[int, float]] = []  # (record timestamp ms, latency s)
    unseen: list[str] = []
    stale: list[str] = []
    polls: list[asyncio.Task] = []
    await producer.start()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:

        async def probe(elapsed: float) -> None:  # one every PROBE_EVERY_S, with the load
            if elapsed >= len(polls) * PROBE_EVERY_S:
                cid, ts = f"fresh-{tag}-{len(polls):05d}", int(time.time() * 1000)
                acked = await producer.send("events", probe_event(cid, ts),
                                            key=cid.encode(), timestamp_ms=ts)
                polls.append(asyncio.create_task(
                    _probe(session, base, cid, ts, acked, seen, unseen, stale)))
        try:
            sent, elapsed = await capacity.offer(producer, records, rate, seconds, tick=probe)
            await producer.flush()
            await asyncio.gather(*polls)
        finally:
            await producer.stop()
    latencies = [lat for _, lat in sorted(seen)]
    half = len(latencies) // 2
    return {"rate_offered": rate, "rate_sent": sent / elapsed, "seconds": elapsed,
            "probes": len(polls), "seen": len(latencies), "unseen": len(unseen),
            "stale": len(stale), "wait_ms": WAIT_MS,
            "p50_s": percentile(latencies, 0.50), "p99_s": percentile(latencies, 0.99),
            "max_s": max(latencies, default=None), "poll_s": POLL_S,
            # A backlog that grows shows as a later half slower than the first.
            "p50_first_half_s": percentile(latencies[:half], 0.5),
            "p50_second_half_s": percentile(latencies[half:], 0.5),
            "latencies_s": [round(x, 4) for x in latencies]}


def freshness(ctx, seconds: float):
    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        steady = capacity.steady_max(b, ws[0], ctx)
        ctx.log(f"  steady maximum (a backlog of {steady['events']:,} more events of the same "
                f"customers): {steady['eps']:,.0f} events/s, worker CPU "
                f"{steady['worker_cpu_us_per_event']:.0f} us/event (the ingest from empty "
                f"state: {done['eps']:,.0f} events/s, {done['worker_cpu_us_per_event']:.0f} "
                f"us/event)")
        live = capacity.live_max(b, ws[0], ctx, capacity.OVER * steady["eps"])
        ctx.log(f"  live maximum (the load generator offering {live['offered_eps']:,.0f} "
                f"events/s, {live['sent_eps']:,.0f} sent): {live['eps']:,.0f} events/s, "
                f"worker CPU {live['worker_cpu_us_per_event']:.0f} us/event")
        rate = ctx.freshness_eps or SHARE * live["eps"]
        r = asyncio.run(measure(b.bootstrap, ws[0].url, rate, seconds, ctx.customers,
                                tag=str(int(time.time()))))
        r["max_eps"], r["ingest_eps"], r["steady"] = live["eps"], done["eps"], steady
        r["live"] = live
        # The same load on the same broker for a bare consumer as busy as the worker.
        from bench import rawlive  # it imports this module's helpers
        r["raw"] = rawlive.measure(b.bootstrap, ctx.partitions, rate, seconds, ctx.customers,
                                   live["worker_cpu_us_per_event"], FETCH_MAX_WAIT_MS_COMPAT,
                                   FETCH_MIN_BYTES_COMPAT)
        raw = r["raw"]
        ctx.log(f"  freshness baseline, bare aiokafka consumer busy {raw['cost_us']:.0f} us per "
                f"record at {raw['rate_sent']:,.0f} records/s: lag p50 {raw['p50_s']:.3f}s p99 "
                f"{raw['p99_s']:.3f}s ({raw['busy_share']:.0%} busy)")
        _log(ctx, rate, live["eps"], r)
        if not ctx.freshness_eps and not _held(r):
            r["sustained"] = sustained(ctx, b, ws[0], live["eps"], seconds)
        return {"freshness": r}
    return run


def _held(r: dict) -> bool:
    return bool(r["seen"]) and not r["unseen"] and r["p99_s"] <= FRESHNESS_P99_S


def _log(ctx, rate: float, max_eps: float, r: dict) -> None:
    if r["seen"]:
        ctx.log(f"  freshness at {rate:,.0f} events/s offered ({r['rate_sent']:,.0f} sent, "
                f"{rate / max_eps:.0%} of {max_eps:,.0f}): p50 {r['p50_s']:.3f}s p99 "
                f"{r['p99_s']:.3f}s over {r['seen']} probes, {r['unseen']} unseen; p50 "
                f"first/second half {r['p50_first_half_s']:.3f}/{r['p50_second_half_s']:.3f}s")
    else:
        ctx.log(f"  freshness: no probe became readable ({r['unseen']} unseen)")


def sustained(ctx, b: Broker, w: Worker, max_eps: float, seconds: float) -> dict:
    """Where the 80 % figure misses: the highest of ``LOWER_SHARES`` of the live maximum
    at which p99 holds (``None`` if none does), so the report says which rate this worker
    keeps fresh, not only that 80 % was too much. Each step is the same measurement."""
    tried = []
    for share in LOWER_SHARES:
        capacity.settle(w)  # the backlog the step before left (it missed) is not this one's
        r = asyncio.run(measure(b.bootstrap, w.url, share * max_eps, seconds, ctx.customers,
                                tag=f"s{int(time.time())}"))
        _log(ctx, share * max_eps, max_eps, r)
        step = {"share": share, "rate_offered": share * max_eps, "rate_sent": r["rate_sent"],
                "p50_s": r["p50_s"], "p99_s": r["p99_s"], "seen": r["seen"],
                "unseen": r["unseen"]}
        tried.append(step)
        if _held(r):
            return {**step, "tried": tried}
    return {"share": None, "tried": tried}
