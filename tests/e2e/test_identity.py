"""Browser identity end to end: a real worker, the real broker, a webhook receiver.

The worker has a publishable key and identity verification on. What an attacker can do with
nothing but the shop's public page (its publishable key, its own valid identity hash) is
refused with 403; after each test the ``events`` topic holds exactly the accepted event ids,
and no webhook ever fires for a forged customer. A server key still sends purchases.
"""
from __future__ import annotations

import json
import uuid

import orjson
import pytest

from app.auth.identity import identity_hash
from app.harness.net import http
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
PUBLISHABLE, SECRET = "test-publishable", "identity-secret-for-tests-0123456789"
HASH = "X-Persona-Identity-Hash"


def signed(cid: str) -> str:
    return identity_hash(SECRET.encode(), cid)


@pytest.fixture(scope="module")
def worker(broker, receiver, tmp_path_factory):
    subs = [{"id": "main", "url": receiver.url("main"), "secret": "plain-secret-0123456789",
             "events": ["purchase.completed", "cart.updated"]}]
    c = Cluster(broker, tmp_path_factory.mktemp("identity"), f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_IDENTITY_SECRET": SECRET, "PERSONA_WEBHOOKS": json.dumps(subs)})
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


def post(worker, events, key=PUBLISHABLE, query="", headers=None):
    h = {"Content-Type": "text/plain", **(headers or {})}
    return http("POST", f"{worker.url}/v1/events{query}", key, orjson.dumps(events), h)


def cart_add(cid, product="p1"):
    return {"type": "cart_add", "customer_id": cid, "product_id": product, "quantity": 1,
            "price": 5.0, "event_id": f"{cid}-{uuid.uuid4().hex[:8]}"}


def purchase(cid):
    return {"type": "purchase", "customer_id": cid, "order_id": f"o-{uuid.uuid4().hex[:8]}",
            "total": 5.0, "currency": "EUR", "items": [{"product_id": "p1", "quantity": 1,
                                                        "price": 5.0}]}


FORGED: set[str] = set()  # customer ids only refused requests named


def victim_untouched(worker, receiver, cid):
    """No profile and no webhook for ``cid`` (the topic check runs after the test)."""
    FORGED.add(cid)
    assert http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ)[0] == 404
    assert receiver.of(cid) == []


def test_forged_purchase_is_refused(worker, receiver):
    cid = f"cust-{uuid.uuid4().hex[:8]}"
    events = [cart_add(cid), purchase(cid)]
    for how in ({"headers": {HASH: signed(cid)}},  # the publishable key in a header
                {"key": None, "query": f"?key={PUBLISHABLE}&identity_hash={signed(cid)}"},
                {"key": None, "query": f"?key={INGEST}&identity_hash={signed(cid)}"}):
        status, body = post(worker, events, **how)
        assert status == 403 and body["error"] == "forbidden event types", (how, body)
        assert body["items"] == [{"index": 1, "type": "purchase"}]
        assert "purchase" not in body["allowed"] and "cart_add" in body["allowed"]
    victim_untouched(worker, receiver, cid)


def test_forged_customer_wrong_and_replayed_hash_are_refused(worker, receiver):
    victim, attacker = f"cust-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    for headers in ({}, {HASH: ""}, {HASH: "00" * 32}, {HASH: signed(victim)[:-2] + "00"},
                    {HASH: signed(attacker)},  # a valid hash replayed for another id
                    {HASH: identity_hash(b"some-other-secret-0123", victim)}):
        status, body = post(worker, [cart_add(victim)], headers=headers)
        assert status == 403 and body["error"] == "identity not verified", (headers, body)
    status, body = post(worker, [cart_add(victim)], key=None,
                        query=f"?key={INGEST}&identity_hash={signed(attacker)}")
    assert status == 403 and body["error"] == "identity not verified"
    # The attacker's own valid hash does not carry events of someone else in the same request.
    status, body = post(worker, [cart_add(attacker), cart_add(victim)],
                        headers={HASH: signed(attacker)})
    assert status == 403 and body["error"] == "one customer per request"
    victim_untouched(worker, receiver, victim)
    victim_untouched(worker, receiver, attacker)


def test_valid_hash_and_anonymous_ids_pass(worker, receiver, accepted):
    cid, anon = f"cust-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4()}"
    status, body = post(worker, [cart_add(cid)], headers={HASH: signed(cid).upper()})
    assert status == 202, body
    accepted.update(body["event_ids"])
    status, body = post(worker, [cart_add(cid, "p2")], key=None,  # what the SDK sends
                        query=f"?key={PUBLISHABLE}&identity_hash={signed(cid)}")
    assert status == 202, body
    accepted.update(body["event_ids"])
    status, body = post(worker, [cart_add(anon)], key=None, query=f"?key={INGEST}")
    assert status == 202, body
    accepted.update(body["event_ids"])
    got = poll(lambda: [c["kind"] for c in receiver.of(cid)], lambda k: len(k) >= 2)
    assert got == ["cart.updated", "cart.updated"]
    assert poll(lambda: receiver.of(anon), bool)


def test_server_key_sends_purchases(worker, receiver, accepted):
    cid = f"cust-{uuid.uuid4().hex[:8]}"  # a server key: no hash, any type, any customers
    status, body = http("POST", f"{worker.url}/v1/events", INGEST,
                        orjson.dumps([cart_add(cid), purchase(cid), cart_add("other-1")]),
                        {"Content-Type": "application/json"})
    assert status == 202, body
    accepted.update(body["event_ids"])
    got = poll(lambda: sorted(c["kind"] for c in receiver.of(cid)), lambda k: len(k) >= 3)
    assert got == ["cart.updated", "cart.updated", "purchase.completed"]


def test_no_webhook_ever_fired_for_a_forged_customer(worker, receiver):
    """Runs last: the accepted events' webhooks, produced after the refusals, have arrived."""
    assert len(FORGED) == 3 and receiver.calls
    assert [c for c in receiver.calls if c["customer"] in FORGED] == []
    for cid in FORGED:
        assert http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ)[0] == 404
