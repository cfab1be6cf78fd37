"""The Segment route's protocol against a real worker: bad input, gzip, messageId dedupe,
clock-skew correction, and a publishable write key refused exactly as on ``POST /v1/events``.

Bad input is also sent with ``segment-analytics-python``, to show the client's side: a 401
and a 413 are each reported to its ``on_error`` once and never retried (the worker counted
one request each), so nothing retries forever and nothing is dropped silently.
"""
from __future__ import annotations

import base64
import gzip
import time
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from app.harness.net import http
from tests.conftest import ADMIN, API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll
from tests.support.segment import segment_calls

pytestmark = pytest.mark.e2e
PUBLISHABLE, MAX_BYTES, MAX_EVENTS = "test-publishable-segment", 65536, 50


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("segment-protocol"),
                f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_INGEST_MAX_BYTES": str(MAX_BYTES),
                     "PERSONA_INGEST_MAX_EVENTS": str(MAX_EVENTS)})
    yield c.start()
    c.stop_all()


def basic(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(worker, path: str, body, key: str | None = INGEST, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    h = {"Content-Type": "application/json", **(basic(key) if key else {}), **(headers or {})}
    return http("POST", f"{worker.url}/segment/v1/{path}", None, raw, h)


def requests_answered(worker, status: int) -> float:
    """How many Segment requests the worker answered with ``status`` (its own count)."""
    _, text = http("GET", f"{worker.url}/metrics", ADMIN)
    lines = [line for line in text.splitlines() if line.startswith("persona_http_requests_total{")
             and 'route="/segment/v1/{call}"' in line and f'status="{status}"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def client(worker, key: str, errors: list, **kw):
    from segment.analytics import Client
    return Client(write_key=key, host=f"{worker.url}/segment", max_retries=3,
                  on_error=lambda exc, batch: errors.append(exc), **kw)


def test_a_wrong_write_key_is_401_reported_once_and_not_retried(worker):
    status, body = post(worker, "track", {"event": "Product Viewed", "userId": "c"}, "nope")
    assert status == 401 and body["success"] is False and body["code"] == "unauthorized", body
    assert post(worker, "track", {"event": "x", "userId": "c"}, None)[0] == 401
    assert post(worker, "track", {"event": "x", "userId": "c", "writeKey": INGEST}, None)[0] == 200
    assert post(worker, "track", {"event": "x", "userId": "c"}, READ)[0] == 403  # no ingest scope

    before, errors = requests_answered(worker, 401), []
    c = client(worker, "wrong-write-key", errors)
    c.track(user_id="c-401", event="Product Viewed", properties={"product_id": "p"})
    c.flush()
    assert [e.status for e in errors] == [401] and errors[0].code == "unauthorized"
    assert requests_answered(worker, 401) - before == 1


def test_oversized_batches_are_413_and_not_retried(worker):
    big = {"batch": [{"type": "track", "event": "Product Viewed", "userId": "c",
                      "properties": {"product_id": "p", "pad": "x" * 1000}}] * 70}
    status, body = post(worker, "batch", big)
    assert status == 413 and body["code"] == "request_too_large", body
    bomb = gzip.compress(orjson.dumps(big))  # small on the wire, too large inflated
    assert len(bomb) < MAX_BYTES
    status, body = post(worker, "batch", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and body["max_bytes"] == MAX_BYTES, body
    many = {"batch": [{"type": "page", "anonymousId": "a"}] * (MAX_EVENTS + 1)}
    status, body = post(worker, "batch", many)
    assert status == 413 and body["code"] == "too_many_events", body
    assert segment_calls(worker).get(("page", "refused"), 0) >= MAX_EVENTS + 1

    before, errors = requests_answered(worker, 413), []
    c = client(worker, INGEST, errors, upload_size=100)
    for _ in range(70):  # ~70 KB in one batch: over this worker's 64 KiB
        c.track(user_id="c-413", event="Product Viewed",
                properties={"product_id": "p", "pad": "y" * 1000})
    c.flush()
    assert {e.status for e in errors} == {413}
    assert requests_answered(worker, 413) - before == len(errors)


def test_malformed_json_and_bodies(worker):
    status, body = post(worker, "batch", b'{"batch": [')
    assert status == 400 and body["code"] == "malformed_json" and body["message"], body
    status, body = post(worker, "batch", gzip.compress(b"nope"),
                        headers={"Content-Encoding": "gzip"})
    assert status == 400 and body["code"] == "malformed_json", body
    assert post(worker, "batch", {"batch": []})[0] == 400
    assert post(worker, "batch", [1, 2])[0] == 400
    assert post(worker, "nonsense", {})[0] == 404
    assert post(worker, "track", b"{}", headers={"Content-Type": "image/png"})[0] == 415


def order(cid: str) -> dict:
    return {"type": "track", "event": "Order Completed", "userId": cid, "properties": {
        "order_id": f"o-{cid}", "total": 10.0, "currency": "EUR",
        "products": [{"product_id": "p", "price": 10.0}]}}


def test_a_publishable_key_is_refused_exactly_as_on_v1_events(worker, broker):
    cid, anon = f"pub-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    before = len(broker.read_all("events"))
    view = {"type": "track", "event": "Product Viewed", "anonymousId": anon,
            "properties": {"product_id": "p"}}
    status, body = post(worker, "batch", {"batch": [view, order(cid)]}, PUBLISHABLE)
    purchase = {"type": "purchase", "customer_id": cid, "order_id": "o", "total": 1.0,
                "currency": "EUR", "items": [{"product_id": "p", "quantity": 1, "price": 1.0}]}
    v1_status, v1_body = http("POST", f"{worker.url}/v1/events", PUBLISHABLE,
                              orjson.dumps([{"type": "product_view", "customer_id": "anon-x",
                                             "product_id": "p"}, purchase]),
                              {"Content-Type": "application/json"})
    assert status == v1_status == 403, (body, v1_body)
    assert body["error"] == v1_body["error"] and body["allowed"] == v1_body["allowed"]
    assert body["items"] == [{"index": 1, "type": "purchase", "event": "Order Completed"}]
    assert v1_body["items"] == [{"index": 1, "type": "purchase"}]
    alias = {"type": "alias", "userId": cid, "previousId": anon}
    status, body = post(worker, "alias", alias, PUBLISHABLE)
    assert status == 403 and body["items"][0]["type"] == "alias", body
    assert len(broker.read_all("events")) == before  # nothing produced

    # What a browser may do: anonymous views are stored, its identify merges nothing.
    status, body = post(worker, "t", view, PUBLISHABLE)
    assert status == 200 and body["success"] is True and body["stored"] == 1, body
    token = body["token"]
    status, body = post(worker, "i", {"userId": cid, "anonymousId": anon}, PUBLISHABLE)
    assert status == 200 and body["stored"] == 0 and "token" not in body, body
    got = http("GET", f"{worker.url}/v1/customers/anon-{anon}/profile?after={token}", READ)
    assert got[0] == 200 and got[1]["event_counts"] == {"product_view": 1}, got


def test_gzip_message_id_dedupe_and_clock_skew(worker):
    cid, message = f"skew-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    fast = datetime.now(timezone.utc) + timedelta(hours=1)  # the device's clock: 1 h ahead
    call = {"type": "track", "event": "Product Viewed", "userId": cid, "messageId": message,
            "properties": {"product_id": "p-skew", "category": "c", "price": 1.5},
            "timestamp": (fast - timedelta(seconds=5)).isoformat()}
    sent = time.time()
    for attempt in range(2):  # a client's retry: same messageId, a later sentAt
        body = {"batch": [call], "sentAt": (fast + timedelta(seconds=attempt)).isoformat()}
        status, answer = post(worker, "batch", gzip.compress(orjson.dumps(body)),
                              headers={"Content-Encoding": "gzip"})
        assert status == 200 and answer["event_ids"] == [message], answer
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/activity?after="
                                   f"{answer['token']}", READ), lambda r: r[0] == 200)
    assert got[0] == 200 and got[1]["events"] == 1, got  # the retry was a duplicate
    ts = got[1]["recent_views"][0]["ts"]
    assert abs(ts - (sent * 1000 - 5000)) < 3000, (ts, sent)  # received - 5 s, not +1 h
