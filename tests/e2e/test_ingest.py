"""POST /v1/events end to end: real broker, real worker, every answer and the topic checked.

Every accepted event id is remembered; after each test the ``events`` topic must hold
exactly those ids (nothing from a rejected request, nothing lost).
"""
from __future__ import annotations

import time
import uuid

import orjson
import pytest

from app.client import PersonaClient, PersonaError
from app.consistency.positions import decode
from app.harness.net import http
from app.rules.events import SERVER_TYPES, SHOP_TYPES, TYPE_SCHEMAS
from tests.conftest import ADMIN, API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
MAX_EVENTS, MAX_BYTES, ORIGIN = 20, 16 * 1024, "http://shop.example"
NDJSON, JSON = "application/x-ndjson", "application/json"


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("ingest"), API_KEYS, env={
        "PERSONA_INGEST_MAX_EVENTS": str(MAX_EVENTS), "PERSONA_INGEST_MAX_BYTES": str(MAX_BYTES),
        "PERSONA_CORS_ORIGINS": f"{ORIGIN}, http://other.example"})
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


def post(worker, body, ctype=JSON, key=INGEST, query="", headers=None):
    if isinstance(body, (dict, list)):
        body = orjson.dumps(body)
    h = {"Content-Type": ctype, **(headers or {})} if ctype else dict(headers or {})
    return http("POST", f"{worker.url}/v1/events{query}", key, body, h)


def view(cid, n=1, **kw):
    return {"type": "product_view", "customer_id": cid, "product_id": f"p{n}",
            "category": "shoes", "price": 10.0 + n, **kw}


def test_object_array_ndjson_and_beacon_are_processed(broker, worker, accepted):
    cid = f"ing-{uuid.uuid4().hex[:8]}"
    before = int(time.time() * 1000)
    status, body = post(worker, view(cid, extra="kept"))  # no event_id, no ts
    assert status == 202 and body["accepted"] == 1
    assigned = body["event_ids"][0]
    assert uuid.UUID(assigned).version == 4
    accepted.update(body["event_ids"])

    batch = [view(cid, n, event_id=f"{cid}-v{n}", ts=before + n) for n in range(2, 5)]
    status, body = post(worker, batch)
    assert (status, body["accepted"], body["event_ids"]) == (202, 3, [e["event_id"] for e in batch])
    assert len(decode(body["token"])) == 1  # one customer: one partition (app.consistency.positions)
    accepted.update(e["event_id"] for e in batch)

    lines = [{"type": "cart_add", "customer_id": cid, "product_id": "p2", "price": 12.0,
              "event_id": f"{cid}-c1"},
             {"type": "search", "customer_id": cid, "query": "boots", "event_id": f"{cid}-s1"},
             {"type": "purchase", "customer_id": cid, "order_id": f"{cid}-o1", "total": 12.0,
              "currency": "EUR", "items": [{"product_id": "p2", "quantity": 1, "price": 12.0}],
              "event_id": f"{cid}-o1"}]
    ndjson = b"\n".join(orjson.dumps(e) for e in lines) + b"\r\n\n"
    status, body = post(worker, ndjson, NDJSON)
    assert status == 202 and body["accepted"] == 3
    accepted.update(body["event_ids"])

    # What sendBeacon sends: text/plain, the ingest-only key in the query string.
    beacon = orjson.dumps([{"type": "payment_preference", "customer_id": cid, "method": "paypal"}])
    status, body = post(worker, beacon, "text/plain;charset=UTF-8", key=None,
                        query=f"?key={INGEST}")
    assert status == 202 and body["accepted"] == 1
    accepted.update(body["event_ids"])

    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and sum(r[1]["event_counts"].values()) == 8)
    assert got[0] == 200, got
    assert got[1]["event_counts"] == {"product_view": 4, "cart_add": 1, "search": 1,
                                      "purchase": 1, "payment_preference": 1}
    assert got[1]["orders"] == 1 and got[1]["total_spent"] == 12.0

    first = next(orjson.loads(v) for v in broker.read_all("events")
                 if orjson.loads(v)["event_id"] == assigned)
    assert first["extra"] == "kept" and before <= first["ts"] <= int(time.time() * 1000)


def test_python_client_batches_by_max_events(worker, accepted):
    cid = f"cli-{uuid.uuid4().hex[:8]}"
    with PersonaClient(worker.url, INGEST, max_events=MAX_EVENTS) as client:
        result = client.send([view(cid, n) for n in range(45)])  # 3 requests
        assert result.accepted == 45 and len(set(result.event_ids)) == 45
        accepted.update(result.event_ids)
        accepted.update(client.cart_add(cid, "p1", 2, price=5.0).event_ids)
        with pytest.raises(PersonaError) as err:
            client.cart_add(cid, "bad id!")
        assert err.value.status == 400
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ),
               lambda r: r[0] == 200 and r[1]["events"] == 46)
    assert got[0] == 200 and got[1]["cart_value"] == 10.0, got


def test_invalid_items_reject_the_whole_request(worker):
    good = view("inv-1")
    batch = [good, {"type": "cart_add", "customer_id": "inv-1"}, good, 42,
             {**good, "price": "cheap", "ts": "yesterday"}]
    status, body = post(worker, batch)
    assert status == 400 and body["error"] == "invalid events"
    assert [i["index"] for i in body["items"]] == [1, 3, 4]
    assert body["invalid"] == 3 and body["total"] == 5
    assert "product_id" in body["items"][0]["errors"]
    assert body["items"][1]["reason"] == "event is not a JSON object"
    assert set(body["items"][2]["errors"]) == {"ts"}  # envelope first, then the type's fields

    ndjson = orjson.dumps(good) + b"\n{not json\n" + orjson.dumps(good)
    status, body = post(worker, ndjson, NDJSON)
    assert status == 400 and [(i["index"], i["reason"]) for i in body["items"]] == [
        (1, "malformed JSON")]
    assert post(worker, b"{not json")[0:1] == (400,)
    assert post(worker, b"{not json")[1]["error"] == "malformed JSON"
    assert post(worker, [])[1] == {"error": "no events"}
    assert post(worker, b"", NDJSON)[0] == 400


def test_duplicate_ids_and_deep_nesting_are_named(worker, accepted):
    a, b = view("dup-1", event_id="dup-e1"), view("dup-1", 2, event_id="dup-e1")
    status, body = post(worker, [a, view("dup-1", 3), b])
    assert status == 400 and [(i["index"], i["reason"]) for i in body["items"]] == [
        (2, "duplicate event_id")]
    assert "index 0" in body["items"][0]["errors"]["event_id"][0]
    deep = b'{"x":' * 300 + b'"leaf"' + b"}" * 300  # deeper than orjson writes
    one = orjson.dumps(view("deep-1"))[:-1] + b',"extra":' + deep + b"}"
    logged = worker.log.stat().st_size
    status, body = post(worker, b"[" + b",".join([one] * 5) + b"]")
    assert status == 400 and {i["reason"] for i in body["items"]} == {"nested too deeply"}
    assert body["invalid"] == 5
    status, body = post(worker, [view("deep-2", extra={"a": [{"b": [1, 2]}]})])  # shallow: kept
    assert status == 202
    accepted.update(body["event_ids"])
    assert b"could not be validated" not in worker.log.read_bytes()[logged:]


@pytest.mark.parametrize("kind", ["teleport"] + [t for t in TYPE_SCHEMAS
                                                 if t not in SHOP_TYPES + SERVER_TYPES])
def test_internal_command_types_are_unknown_types(worker, kind):
    assert "erase" in TYPE_SCHEMAS
    status, body = post(worker, [view("int-1"), {"type": kind, "customer_id": "int-1"}])
    assert status == 400
    assert body["items"] == [{"index": 1, "reason": "unknown event type", "errors": {
        "type": [f"Must be one of: {', '.join(SHOP_TYPES + SERVER_TYPES)}."]}}]


def test_limits_413(worker):
    status, body = post(worker, [view("lim-1", n) for n in range(MAX_EVENTS + 1)])
    assert status == 413 and body == {"error": "too many events", "max_events": MAX_EVENTS,
                                      "events": MAX_EVENTS + 1}
    lines = b"\n".join(orjson.dumps(view("lim-1", n)) for n in range(MAX_EVENTS + 1))
    assert post(worker, lines, NDJSON)[0] == 413
    huge = view("lim-1", query="x" * MAX_BYTES)
    status, body = post(worker, huge)
    assert status == 413 and body == {"error": "request too large", "max_bytes": MAX_BYTES}

    async def chunks():  # no Content-Length: the cap applies while reading
        for _ in range(40):
            yield b" " * 1024
    assert post(worker, chunks())[0] == 413


def test_content_type_415_and_auth(worker):
    for ctype in ("application/xml", "application/x-www-form-urlencoded", None):
        status, body = post(worker, [view("ct-1")], ctype)
        assert status == 415 and body["error"] == "unsupported content type", ctype
    assert post(worker, [view("auth-1")], key=None)[0] == 401
    assert post(worker, [view("auth-1")], key="wrong")[0] == 401
    assert post(worker, [view("auth-1")], key=READ)[0] == 403
    assert post(worker, [view("auth-1")], key=None, query="?key=wrong")[0] == 401
    for key in (ADMIN, READ):  # only ingest-only keys may travel in a URL
        status, body = post(worker, [view("auth-1")], key=None, query=f"?key={key}")
        assert status == 403 and "ingest-only" in body["detail"]


def test_cors(worker, accepted):
    url = f"{worker.url}/v1/events"
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers = options(url, pre)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, headers = options(url, {**pre, "Origin": "http://evil.example"})
    assert status == 204 and "Access-Control-Allow-Origin" not in headers

    import asyncio

    import aiohttp

    async def cors_post(body, key):
        h = {"Origin": ORIGIN, "Authorization": f"Bearer {key}", "Content-Type": JSON}
        async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=h) as r:
            return r.status, r.headers.get("Access-Control-Allow-Origin"), await r.json()
    status, allow, body = asyncio.run(cors_post(orjson.dumps(view("cors-1")), INGEST))
    assert (status, allow) == (202, ORIGIN)
    accepted.update(body["event_ids"])
    assert asyncio.run(cors_post(b"[1]", INGEST))[:2] == (400, ORIGIN)
    assert asyncio.run(cors_post(b"[1]", "wrong"))[:2] == (401, ORIGIN)


def options(url, headers):
    import asyncio

    import aiohttp

    async def run():
        async with aiohttp.ClientSession() as s, s.options(url, headers=headers) as r:
            return r.status, dict(r.headers)
    return asyncio.run(run())


def test_sdk_openapi_and_disabled_demo(worker):
    status, text = http("GET", f"{worker.url}/sdk/persona.js")
    assert status == 200 and "persona" in text and "sendBeacon" in text
    status, text = http("GET", f"{worker.url}/demo/shop")
    assert status == 404 and "demo is disabled" in text
    status, doc = http("GET", f"{worker.url}/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.") and "/v1/events" in doc["paths"]
