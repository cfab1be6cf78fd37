"""Rate limits end to end: a real worker with low limits on a real broker.

The Python client sends more than the ingest limit allows, is answered 429 at least once
(seen in /metrics), backs off with Retry-After, and every event arrives exactly once; a raw
burst gets 429 + Retry-After + a JSON body; reads are limited apart from ingest; another key,
and a publishable key from another address, are not affected. After each test the ``events``
topic holds exactly the accepted event ids.
"""
from __future__ import annotations

import asyncio
import uuid

import aiohttp
import orjson
import pytest

from app.client import PersonaClient
from app.harness.net import http
from tests.conftest import ADMIN, API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
INGEST2, READ2, PK = "test-ingest2-0123456789", "test-read2-0123456789", "test-pk-0123456789"
#: A key no test drains (the client test empties INGEST2's bucket just before the others).
INGEST3 = "test-ingest3-0123456789"
KEYS = f"{API_KEYS},{INGEST2}:ingest,{INGEST3}:ingest,{READ2}:read,{PK}:publishable"
RATE_EVENTS, READ_BURST = 10, 3


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("rate"), KEYS, env={
        "PERSONA_RATE_INGEST": f"{RATE_EVENTS}/s:{RATE_EVENTS}",
        "PERSONA_RATE_READ": f"2/s:{READ_BURST}",
        "PERSONA_RATE_PUBLISHABLE": "1/s:2"})
    yield c.start()
    c.stop_all()


@pytest.fixture(scope="module")
def accepted():
    return set()


@pytest.fixture(autouse=True)
def topic_holds_exactly_the_accepted(broker, worker, accepted):
    yield
    on_topic = [orjson.loads(v)["event_id"] for v in broker.read_all("events")]
    assert len(on_topic) == len(set(on_topic)) and set(on_topic) == accepted


def call(method, url, key=None, body=None, headers=None):
    """(status, headers, JSON body or None) of one request."""
    async def run():
        h = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
        async with aiohttp.ClientSession() as s, s.request(method, url, data=body,
                                                           headers=h) as r:
            raw = await r.read()
            try:
                return r.status, dict(r.headers), orjson.loads(raw)
            except orjson.JSONDecodeError:
                return r.status, dict(r.headers), None
    return asyncio.run(run())


def view(cid, n):
    return {"type": "product_view", "customer_id": cid, "product_id": f"p{n}", "price": 1.0}


def post(worker, events, key=INGEST, query="", headers=None):
    return call("POST", f"{worker.url}/v1/events{query}", key, orjson.dumps(events),
                {"Content-Type": "application/json", **(headers or {})})


def metric(worker, prefix: str, *labels: str) -> float:
    status, text = http("GET", f"{worker.url}/metrics", ADMIN)
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix + "{") and all(lb in line for lb in labels))


def limited_429s(worker, kind):
    return metric(worker, "persona_rate_limited_total", f'kind="{kind}"')


def test_python_client_backs_off_and_every_event_arrives_once(broker, worker, accepted):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    http_429 = metric(worker, "persona_http_requests_total", 'route="/v1/events"',
                      'status="429"')
    limited = limited_429s(worker, "ingest")
    with PersonaClient(worker.url, INGEST2, max_events=5) as client:
        result = client.send([view(cid, n) for n in range(6 * RATE_EVENTS)])
    assert result.accepted == 60 and len(set(result.event_ids)) == 60
    accepted.update(result.event_ids)
    # The client was refused at least once (it sends 6 s of the limit at once) ...
    assert metric(worker, "persona_http_requests_total", 'route="/v1/events"',
                  'status="429"') > http_429
    assert limited_429s(worker, "ingest") > limited
    # ... and each event is on the topic once (checked after the test) and counted once.
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", ADMIN),
               lambda r: r[0] == 200 and r[1]["event_counts"].get("product_view") == 60)
    assert got[0] == 200 and got[1]["event_counts"] == {"product_view": 60}, got


def test_raw_burst_gets_429_with_retry_after_and_other_keys_are_not_affected(worker, accepted):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    status, _, body = post(worker, [view(cid, n) for n in range(RATE_EVENTS)])
    assert status == 202
    accepted.update(body["event_ids"])
    refused = [post(worker, [view(cid, 99)]) for _ in range(3)]
    status, headers, body = refused[-1]
    assert status == 429, refused
    assert headers["Retry-After"].isdigit() and int(headers["Retry-After"]) >= 1
    assert body["error"] == "rate limited" and body["limit"] == "ingest"
    assert body["retry_after"] == int(headers["Retry-After"])
    assert headers["Content-Type"].startswith("application/json")
    # Another ingest key has its own bucket; reads have their own limit.
    status, _, body = post(worker, [view(cid, 100)], key=INGEST3)
    assert status == 202
    accepted.update(body["event_ids"])
    assert call("GET", f"{worker.url}/v1/customers/{cid}/profile", READ)[0] in (200, 404)
    # After Retry-After, the first key is admitted again.
    asyncio.run(asyncio.sleep(int(headers["Retry-After"])))
    status, _, body = post(worker, [view(cid, 101)])
    assert status == 202
    accepted.update(body["event_ids"])


def test_reads_are_limited_per_key(worker):
    url = f"{worker.url}/v1/customers/rl-nobody/profile"
    limited = limited_429s(worker, "read")
    answers = [call("GET", url, READ) for _ in range(READ_BURST + 3)]
    statuses = [a[0] for a in answers]
    assert statuses[0] == 404 and 429 in statuses, statuses
    status, headers, body = answers[statuses.index(429)]
    assert int(headers["Retry-After"]) >= 1 and body["limit"] == "read"
    assert limited_429s(worker, "read") > limited
    # The forwarded marker is not authenticated, so a client sending it is limited too.
    forged = call("GET", url, READ, headers={"X-Persona-Forwarded": "1"})
    assert forged[0] == 429, forged
    assert call("GET", url, READ2)[0] == 404  # another key: not affected
    assert post(worker, [], key=INGEST)[0] in (400, 429)  # ingest is another limit


def test_publishable_key_is_limited_per_address_and_forwarded_for_is_not_trusted(worker,
                                                                                 accepted):
    cid = f"anon-{uuid.uuid4().hex[:8]}"
    status, _, body = post(worker, [view(cid, 1), view(cid, 2)], key=None, query=f"?key={PK}")
    assert status == 202
    accepted.update(body["event_ids"])
    status, headers, body = post(worker, [view(cid, 3)], key=None, query=f"?key={PK}",
                                 headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 429 and body["limit"] == "publishable" and "Retry-After" in headers
    # A server key is not affected by the browser key's visitors.
    status, _, body = post(worker, [view(cid, 4)], key=INGEST3)
    assert status == 202
    accepted.update(body["event_ids"])
