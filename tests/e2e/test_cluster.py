"""Two real workers: reads are routed to the key's owner, stay authenticated, and a
worker that goes away yields 503s and then correct answers, never defaults or 500s."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from app.cli.otto import load_sample
from app.harness.net import get_json, http
from app.rules import profile_state
from tests.conftest import READ
from tests.support.cluster import poll
from tests.support.expected import fold

pytestmark = pytest.mark.e2e


def get_profile(worker, cid, key=READ, headers=None):
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile", key, headers=headers)


def raw_get(url, key=READ, headers=None):
    """(status, headers, body bytes) of one GET: the conditional-read headers included."""
    async def run():
        h = {"Authorization": f"Bearer {key}", **(headers or {})}
        async with aiohttp.ClientSession() as s, s.get(url, headers=h) as r:
            return r.status, r.headers.copy(), await r.read()  # case-insensitive
    return asyncio.run(run())


def check_conditional_reads(a, b, broker, cid, want):
    """ETag and Cache-Control on every answer, the same tag locally and forwarded, 304 with
    no body for the current tag from either worker, a new tag once the answer changes."""
    path = f"/v1/customers/{cid}/profile"
    answers = [raw_get(f"{w.url}{path}") for w in (a, b)]  # one of them forwards
    tags = {h["ETag"] for _, h, _ in answers}
    assert len(tags) == 1, answers
    tag = tags.pop()
    for status, headers, body in answers:
        assert status == 200 and headers["Cache-Control"] == "private, no-cache"
        assert orjson.loads(body) == want
    for w in (a, b):
        status, headers, body = raw_get(f"{w.url}{path}", headers={"If-None-Match": tag})
        assert (status, body, headers["ETag"]) == (304, b"", tag), (w.port, status, body)
        assert raw_get(f"{w.url}{path}", headers={"If-None-Match": '"stale"'})[0] == 200
    broker.produce([{"event_id": f"etag-{cid}", "type": "product_view", "customer_id": cid,
                     "ts": max(want["as_of"], 1) + 1000, "product_id": "etag-product",
                     "category": "etag-category"}])
    for w in (a, b):
        got = poll(lambda w=w: raw_get(f"{w.url}{path}", headers={"If-None-Match": tag}),
                   lambda r: r[0] == 200, 60)
        assert got[0] == 200 and got[1]["ETag"] != tag, (w.port, got[:2])
        assert orjson.loads(got[2]) != want


def both_ready(a, b):
    """Both workers joined one group generation (each owns some partitions). A worker that
    exits meanwhile fails at once with its log's tail: that is a crash to read, not a wait."""
    def ok():
        for w in (a, b):
            assert w.alive(), f"worker {w.port} exited with {w.proc.poll()}; log {w.log}:\n{w.tail()}"
        sa, ba = get_json(f"{a.url}/ready")
        sb, bb = get_json(f"{b.url}/ready")
        return sa == sb == 200 and ba["active_partitions"] > 0 and bb["active_partitions"] > 0
    assert poll(ok, bool, timeout=90), \
        f"two workers never shared the partitions; logs:\n{a.tail(20)}\n---\n{b.tail(20)}"


def test_two_workers_route_reads_and_survive_a_stop(broker, cluster):
    events = load_sample()
    expected = {cid: profile_state.view(p) for cid, (_, p) in fold(events).items()}
    a = cluster.start()
    b = cluster.start()
    both_ready(a, b)
    broker.produce(events)
    for cid, want in expected.items():
        for w in (a, b):  # the same answer from either worker: one of them forwards
            got = poll(lambda w=w, cid=cid: get_profile(w, cid), lambda r, want=want: r == (200, want), 90)
            assert got == (200, want), (cid, w.port, got)

    # Forwarded reads stay authenticated: no key → 401 from either worker, and the
    # owner rejects a request that claims to be forwarded but carries no key.
    for cid in list(expected)[:5]:
        for w in (a, b):
            assert get_profile(w, cid, key=None)[0] == 401
            assert get_profile(w, cid, key=None, headers={"X-Persona-Forwarded": "1"})[0] == 401

    cid = sorted(expected)[0]
    check_conditional_reads(a, b, broker, cid, expected[cid])
    expected.pop(cid)  # changed by the check's event

    # Stop b: a takes over b's partitions. Meanwhile every answer is the truth or a 503.
    b.stop()
    seen = set()
    deadline = time.monotonic() + 90
    pending = set(expected)
    while pending and time.monotonic() < deadline:
        for cid in sorted(pending):
            status, body = get_profile(a, cid)
            seen.add(status)
            assert status in (200, 503), (cid, status, body)
            if status == 200:
                assert body == expected[cid], cid
                pending.discard(cid)
            else:
                assert body["error"] == "unavailable"
        time.sleep(0.2)
    assert not pending, f"never answered after takeover: {sorted(pending)}"
