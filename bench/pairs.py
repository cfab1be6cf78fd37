"""Read-your-writes pairs: POST one event, GET with its token, at half of max throughput.

On the 1-worker compat-on worker, after the freshness phase: a background load is
produced straight to ``events`` at ``SHARE`` of the events/s that worker reached in this
run's ingest, while ``CLIENTS`` concurrent clients each loop: ``POST /v1/events`` one
``product_view`` of one of its own ``IDS_PER_CLIENT`` customers (server key, so the
answer carries a token), then ``GET /v1/customers/{id}/profile?after=<token>&wait_ms=5000``. The pair's
latency is from sending the POST to the 200 of the GET, so it is what a checkout page
waits for between "write" and "read my write". A 503 (not yet applied within
``wait_ms``) is retried after its ``Retry-After`` and counted; the pair's time includes
the retries. A client alone writes to its customers, so it knows how many views each has:
the profile's ``event_counts.product_view`` must equal that for every pair (a 200 that
misses its own write counts as a failure).
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench import gen
from bench.capacity import offer
from bench.freshness import percentile
from bench.procs import API_KEY, Broker, Worker

SHARE = 0.5
CLIENTS = 4
IDS_PER_CLIENT = 25
WAIT_MS = 5000


def _event(cid: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "product_view", "customer_id": cid,
            "ts": int(time.time() * 1000), "product_id": "p-pair", "category": "shoes",
            "price": 10.0}


async def _client(session, base: str, tag: str, until: float, seed: int, out: dict) -> None:
    """Pairs on this client's own customers, so it knows each one's exact view count."""
    rnd, counts = random.Random(seed), {}
    ids = [f"pair-{tag}-{seed}-{k}" for k in range(IDS_PER_CLIENT)]
    while time.monotonic() < until:
        cid = rnd.choice(ids)
        t0 = time.monotonic()
        async with session.post(base + "/v1/events", json=_event(cid)) as r:
            if r.status != 202:
                out["post_errors"] += 1
                await asyncio.sleep(0.05)
                continue
            token = (await r.json())["token"]
        counts[cid] = counts.get(cid, 0) + 1
        url = f"{base}/v1/customers/{cid}/profile?after={token}&wait_ms={WAIT_MS}"
        while True:
            async with session.get(url) as r:
                body = await r.read()
                if r.status == 200:
                    break
                out["not_yet_503"] += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        out["latencies_s"].append(time.monotonic() - t0)
        seen = orjson.loads(body)["event_counts"].get("product_view", 0)
        if seen != counts[cid]:
            out["failures"] += 1  # a 200 that misses its own write: the guarantee broken


async def measure(bootstrap: str, base: str, rate: float, seconds: float,
                  customers: int) -> dict:
    records = gen.generate(customers, max(1, int(rate * seconds)), seed=11,
                           start_ms=int(time.time() * 1000))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    out = {"latencies_s": [], "not_yet_503": 0, "post_errors": 0, "failures": 0}
    tag = str(int(time.time()))
    await producer.start()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        try:
            until = time.monotonic() + seconds
            clients = [asyncio.create_task(_client(session, base, tag, until, i, out))
                       for i in range(CLIENTS)]
            sent, elapsed = await offer(producer, records, rate, seconds)
            await asyncio.gather(*clients)
        finally:
            await producer.stop()
    lat = out.pop("latencies_s")
    return {"rate_offered": rate, "rate_sent": sent / elapsed, "seconds": elapsed,
            "clients": CLIENTS, "pairs": len(lat), **out,
            "p50_s": percentile(lat, 0.5), "p99_s": percentile(lat, 0.99),
            "max_s": max(lat, default=None)}


def pairs(ctx, seconds: float):
    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        rate = SHARE * done["eps"]
        r = asyncio.run(measure(b.bootstrap, ws[0].url, rate, seconds, ctx.customers))
        r["max_eps"] = done["eps"]
        if r["pairs"]:
            ctx.log(f"  read-your-writes pairs at {r['rate_sent']:,.0f} events/s background "
                    f"({SHARE:.0%} of {done['eps']:,.0f}): {r['pairs']} pairs, p50 "
                    f"{1000 * r['p50_s']:.0f} ms p99 {1000 * r['p99_s']:.0f} ms, "
                    f"{r['not_yet_503']} 503s retried, {r['post_errors']} POST errors")
        else:
            ctx.log(f"  read-your-writes pairs: none completed ({r['post_errors']} POST errors)")
        return {"pairs": r}
    return run
