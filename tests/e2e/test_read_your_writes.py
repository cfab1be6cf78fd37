"""Read your writes against two real workers: every GET with the token of its own POST
reflects that event, under a steady background load and across a rebalance (one worker
stops midway: answers are then correct or 503, never a state without the event)."""
from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter

import aiohttp
import pytest

from app.client import PersonaClient
from app.consistency.positions import decode, encode
from tests.conftest import API_KEYS, INGEST, READ
from tests.e2e.test_cluster import both_ready
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
PAIRS, TASKS = 1000, 20
INGEST_H = {"Authorization": f"Bearer {INGEST}", "Content-Type": "application/json"}
READ_H = {"Authorization": f"Bearer {READ}"}


@pytest.fixture(scope="module")
def workers(broker, tmp_path_factory):
    cluster = Cluster(broker, tmp_path_factory.mktemp("ryw"), api_keys=API_KEYS)
    a, b = cluster.start(), cluster.start()
    both_ready(a, b)
    yield a, b
    cluster.stop_all()


def view_event(cid: str, n: int) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "product_view", "customer_id": cid,
            "ts": int(time.time() * 1000), "product_id": f"p{n}", "category": "c", "price": 1.0}


async def post(session, url, events) -> tuple[int, dict]:
    async with session.post(f"{url}/v1/events", json=events, headers=INGEST_H) as r:
        return r.status, await r.json(content_type=None)


async def get(session, url, cid, query="") -> tuple[int, dict]:
    async with session.get(f"{url}/v1/customers/{cid}/profile{query}", headers=READ_H) as r:
        return r.status, await r.json(content_type=None)


def written(workers, cid) -> str:
    async def run():
        async with aiohttp.ClientSession() as s:
            status, body = await post(s, workers[0].url, [view_event(cid, 0)])
            assert status == 202, body
            return body["token"]
    return asyncio.run(run())


def test_bad_tokens_are_400_and_forwarded_reads_carry_the_token(workers):
    token = written(workers, "ryw-x")
    (partition, offset), = decode(token).items()
    other = next(t for t in (written(workers, f"ryw-y{i}") for i in range(40))
                 if partition not in decode(t))
    far = encode({partition: offset + 10_000_000})

    async def run():
        async with aiohttp.ClientSession() as s:
            for w in workers:  # one is the owner, the other forwards
                for query, field in ((f"?after={other}", "after"), ("?after=garbage", "after"),
                                     ("?after=v1.W1sxLDJdXQ==", "after"), ("?after=", "after"),
                                     (f"?after={token}&wait_ms=5001", "wait_ms"),
                                     (f"?after={token}&wait_ms=-1", "wait_ms")):
                    status, body = await get(s, w.url, "ryw-x", query)
                    assert status == 400 and list(body["fields"]) == [field], (query, body)
                assert (await get(s, w.url, "ryw-x", f"?after={token}"))[0] == 200
                started = time.monotonic()
                status, body = await get(s, w.url, "ryw-x", f"?after={far}&wait_ms=300")
                assert time.monotonic() - started >= 0.3
                assert status == 503 and body["error"] == "not yet applied", body
                assert body["partition"] == partition and body["applied"] >= offset, body
    asyncio.run(run())


def test_the_python_client_reads_its_writes_on_every_read_route(workers):
    for w in workers:
        cid = f"ryw-client-{w.port}"
        with PersonaClient(w.url, INGEST) as ingest, PersonaClient(w.url, READ) as read:
            sent = ingest.send([view_event(cid, n) for n in range(1, 4)])
            assert (sent.accepted, list(decode(sent.token).values())[0] >= 0) == (3, True)
            assert read.profile(cid, after=sent.token)["event_counts"] == {"product_view": 3}
            assert read.activity(cid, after=sent.token, wait_ms=3000)["events"] == 3
            recs = read.recommendations(cid, after=sent.token, limit=2)
            assert recs is not None and len(recs["products"]) <= 2
            assert read.profile("ryw-nobody") is None


def background_load(url: str, stop: threading.Event, sent: Counter) -> None:
    """~200 events/s for other customers until ``stop``, on ``url`` (the worker that stays)."""
    async def run():
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                events = [view_event(f"bg-{random.randrange(500)}", 0) for _ in range(20)]
                try:
                    status, _ = await post(s, url, events)
                    sent[status] += 1
                except aiohttp.ClientError:
                    sent["error"] += 1
                await asyncio.sleep(0.1)
    asyncio.run(run())


async def one_pair(s, live, cid, n, seen: Counter) -> None:
    """POST one event of ``cid`` (its ``n``-th), then GET with the token until 200; each 200
    must count exactly ``n`` events (no miss, no double count)."""
    ev = view_event(cid, n)
    while True:
        try:
            status, body = await post(s, random.choice(live), [ev])  # same event_id on retry
        except aiohttp.ClientError:
            status, body = 0, {}
        seen[f"post {status}"] += 1
        if status == 202:
            break
        assert status in (0, 503), body
        await asyncio.sleep(0.2)
    token = body["token"]
    for _ in range(200):
        try:
            status, body = await get(s, random.choice(live), cid, f"?after={token}&wait_ms=2000")
        except aiohttp.ClientError:
            status, body = 0, {}
        seen[f"get {status}"] += 1
        if status == 200:
            assert body["event_counts"] == {"product_view": n}, (cid, n, token, body)
            return
        assert status in (0, 503), (cid, status, body)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{cid}: never answered with its event {n}")


def test_every_read_with_its_token_sees_its_write_across_a_rebalance(workers):
    a, b = workers
    stop, sent = threading.Event(), Counter()
    load = threading.Thread(target=background_load, args=(a.url, stop, sent), daemon=True)
    load.start()
    live, seen, done = [a.url, b.url], Counter(), []

    async def task(i):
        counts = Counter()
        async with aiohttp.ClientSession() as s:
            for _ in range(PAIRS // TASKS):
                cid = f"ryw-{i}-{random.randrange(25)}"
                counts[cid] += 1
                await one_pair(s, live, cid, counts[cid], seen)
                done.append(cid)

    async def stop_b_midway():
        while len(done) < PAIRS // 2:
            await asyncio.sleep(0.05)
        marks["half"] = time.monotonic() - started
        live.remove(b.url)
        await asyncio.to_thread(b.stop)
        marks["stopped"] = time.monotonic() - started

    async def run():
        await asyncio.gather(stop_b_midway(), *(task(i) for i in range(TASKS)))

    started, marks = time.monotonic(), {}
    try:
        asyncio.run(run())
    finally:
        stop.set()
        load.join(10)
    took = time.monotonic() - started
    print(f"{len(done)} pairs in {took:.1f}s ({marks}); {dict(seen)}; background {dict(sent)}")
    assert len(done) == PAIRS and sent[202] > 0
