"""Aliasing end to end: a real worker, a real broker.

An anonymous visitor browses with the page's publishable key; the shop's backend then
aliases the anonymous id to the signed-in customer with a server key, and the customer's
profile and session hold the anonymous activity (forwarded through ``events`` to the
customer's partition). The publishable key cannot alias (403, nothing produced); a repeated
alias forwards nothing more; an anonymous event sent after the alias reaches the customer.
Erasing the customer and the anonymous id (reads wait on the erases' tokens) leaves nothing
that forwards. The attack on a merged id: tests/e2e/test_alias_attack.py.
"""
from __future__ import annotations

import uuid

import orjson
import pytest

from app.harness.net import http
from tests.conftest import ADMIN, API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
PUBLISHABLE, SECRET = "test-publishable", "identity-secret-for-alias-tests-0123"


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("alias"), f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_IDENTITY_SECRET": SECRET})
    yield c.start()
    c.stop_all()


def post(worker, events, key=INGEST, query=""):
    return http("POST", f"{worker.url}/v1/events{query}", key, orjson.dumps(events),
                {"Content-Type": "text/plain"})


def view(cid, product, category="shoes"):
    return {"type": "product_view", "customer_id": cid, "product_id": product,
            "category": category, "event_id": f"{cid}-{uuid.uuid4().hex[:8]}"}


def cart_add(cid, product):
    return {"type": "cart_add", "customer_id": cid, "product_id": product, "quantity": 1,
            "price": 7.5, "event_id": f"{cid}-{uuid.uuid4().hex[:8]}"}


def alias(customer, anonymous):
    return {"type": "alias", "customer_id": customer, "anonymous_id": anonymous}


def profile(worker, cid, token=None):
    after = f"?after={token}&wait_ms=5000" if token else ""
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile{after}", READ)


def customer_events(broker, cid) -> list[str]:
    """Event ids on ``events`` for ``cid``: its own and those forwarded to it (not aliases)."""
    events = [orjson.loads(v) for v in broker.read_all("events")]
    return sorted(e["event_id"] for e in events
                  if e.get("customer_id") == cid and e["type"] != "alias")


def test_anonymous_activity_moves_to_the_customer_once(worker, broker):
    anon, cid = f"anon-{uuid.uuid4()}", f"cust-{uuid.uuid4().hex[:8]}"
    browsing = [view(anon, "p1"), view(anon, "p2", "home"), cart_add(anon, "p2")]
    status, body = post(worker, browsing, key=None, query=f"?key={PUBLISHABLE}")
    assert status == 202, body
    assert profile(worker, anon, body["token"])[1]["event_counts"] == {"product_view": 2,
                                                                       "cart_add": 1}
    status, body = post(worker, [view(cid, "p3")])
    own = body["event_ids"][0]
    assert status == 202 and profile(worker, cid, body["token"])[0] == 200

    # The page's key cannot merge anything, in the URL or in a header.
    before = len(broker.read_all("events"))
    for key, query in ((None, f"?key={PUBLISHABLE}"), (PUBLISHABLE, "")):
        status, body = post(worker, [alias(cid, anon)], key=key, query=query)
        assert status == 403 and body["items"] == [{"index": 0, "type": "alias"}], body
    assert len(broker.read_all("events")) == before

    status, body = post(worker, [alias(cid, anon)])  # the shop's backend, server key
    assert status == 202, body
    merged = poll(lambda: profile(worker, cid),
                  lambda r: r[1].get("event_counts", {}).get("product_view") == 3)
    assert merged[0] == 200, merged
    assert merged[1]["event_counts"] == {"product_view": 3, "cart_add": 1}
    assert {a["category"] for a in merged[1]["category_affinities"]} == {"shoes", "home"}
    status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
    assert status == 200 and [line["product_id"] for line in session["cart"]] == ["p2"], session
    status, gone = profile(worker, anon)
    assert status == 404 and gone["merged_into"] == cid

    # Repeated: nothing more is forwarded, the profile is unchanged.
    forwarded = customer_events(broker, cid)
    assert forwarded == sorted([e["event_id"] for e in browsing] + [own])
    status, body = post(worker, [alias(cid, anon)])
    assert status == 202
    assert profile(worker, anon, body["token"])[0] == 404  # the owner has applied it
    assert customer_events(broker, cid) == forwarded
    assert profile(worker, cid)[1]["event_counts"] == merged[1]["event_counts"]

    # An anonymous event sent late (e.g. a page still open) lands on the customer.
    status, _ = post(worker, [view(anon, "p4")], key=None, query=f"?key={PUBLISHABLE}")
    assert status == 202
    late = poll(lambda: profile(worker, cid),
                lambda r: r[1].get("event_counts", {}).get("product_view") == 4)
    assert late[1]["event_counts"] == {"product_view": 4, "cart_add": 1}


def test_erasing_a_customer_and_its_anonymous_id(worker):
    """README: erasing the customer leaves the redirect; erase the anonymous id too. The
    erase's token makes the reads wait until both erases are applied."""
    anon, cid = f"anon-{uuid.uuid4()}", f"cust-{uuid.uuid4().hex[:8]}"
    assert post(worker, [view(anon, "p1")], key=None, query=f"?key={PUBLISHABLE}")[0] == 202
    status, body = post(worker, [alias(cid, anon)])
    assert status == 202 and profile(worker, anon, body["token"])[1]["merged_into"] == cid
    assert poll(lambda: profile(worker, cid), lambda r: r[0] == 200)[0] == 200
    for who in (cid, anon):
        status, body = http("DELETE", f"{worker.url}/v1/customers/{who}", ADMIN)
        assert status == 202 and body["token"].startswith("v1."), body
        assert profile(worker, who, body["token"]) == (404, {"error": "not found",
                                                              "customer_id": who})
    # The redirect is gone with the anonymous id: a late event starts it afresh, alone.
    status, body = post(worker, [view(anon, "p2")], key=None, query=f"?key={PUBLISHABLE}")
    assert profile(worker, anon, body["token"])[1]["event_counts"] == {"product_view": 1}
    assert profile(worker, cid)[0] == 404

