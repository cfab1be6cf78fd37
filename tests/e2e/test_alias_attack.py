"""A merged anonymous id is no key to the customer, against a real worker: past a grace after
the merge, events the public page key sends for the old id are dead-lettered instead of
forwarded, so nothing reaches the customer's state and no webhook about the customer goes
out. The demo shop's order route is rate limited and off while webhooks are configured.

Each test starts its own worker on the module's broker: no other worker of the group may own
the anonymous id's partition (it would apply another grace).
"""
from __future__ import annotations

import time
import uuid

import orjson
import pytest

from app.harness.net import http
from tests.conftest import API_KEYS, READ
from tests.e2e.test_alias import PUBLISHABLE, SECRET, alias, cart_add, post, profile, view
from tests.support.cluster import Cluster, poll
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


def test_a_merged_anonymous_id_is_no_key_to_the_customer(broker, tmp_path):
    """The attack: after the backend merges anon-X into C, someone holding only the public
    page key keeps posting events for anon-X. Past the grace after the merge they go to
    events-dlq; nothing reaches C's state and no webhook about C goes out. Events already in
    flight at sign-in (within the grace) still follow, and the server side always may."""
    receiver = Receiver().start()
    subs = [{"id": "main", "url": receiver.url("main"), "secret": "alias-webhook-secret-0123",
             "events": ["cart.updated", "purchase.completed", "cart.abandoned"]}]
    c = Cluster(broker, tmp_path, f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_IDENTITY_SECRET": SECRET, "PERSONA_ALIAS_BROWSER_GRACE_S": "2",
                     "PERSONA_WEBHOOKS": orjson.dumps(subs).decode()})
    try:
        worker = c.start()
        anon, cid = f"anon-{uuid.uuid4()}", f"victim-{uuid.uuid4().hex[:8]}"
        page = f"?key={PUBLISHABLE}"
        assert post(worker, [view(anon, "p1"), cart_add(anon, "p2")], key=None, query=page)[0] == 202
        status, body = post(worker, [alias(cid, anon)])  # the backend, server key
        assert status == 202
        redirect = poll(lambda: profile(worker, anon, body["token"]),
                        lambda r: isinstance(r[1], dict) and r[1].get("merged_into") == cid)
        assert redirect[1].get("merged_into") == cid, redirect
        merged = poll(lambda: profile(worker, cid), lambda r: r[0] == 200
                      and r[1]["event_counts"] == {"product_view": 1, "cart_add": 1})
        assert merged[1]["event_counts"] == {"product_view": 1, "cart_add": 1}
        # In flight at sign-in: still follows the redirect.
        assert post(worker, [view(anon, "p3")], key=None, query=page)[0] == 202
        assert poll(lambda: profile(worker, cid)[1]["event_counts"].get("product_view"),
                    lambda n: n == 2) == 2
        hooks_before = len(receiver.of(cid))

        time.sleep(2.5)  # past the grace
        attack = {**cart_add(anon, "attacker-item"), "quantity": 7, "price": 999.0}
        status, body = post(worker, [attack, view(anon, "p9")], key=None, query=page)
        assert status == 202  # accepted for the anonymous id, as any page event is
        dead = poll(lambda: [orjson.loads(v) for v in broker.read_all("events-dlq")],
                    lambda d: sum(x["reason"] == "merged anonymous id" for x in d) == 2)
        refused = [x for x in dead if x["reason"] == "merged anonymous id"]
        assert len(refused) == 2 and all("customer_id" in x["errors"] for x in refused)
        # The server side still may: the backend's own event for the old id follows.
        server = view(anon, "p5")
        assert post(worker, [server])[0] == 202
        assert poll(lambda: profile(worker, cid)[1]["event_counts"].get("product_view"),
                    lambda n: n == 3) == 3
        status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
        assert [line["product_id"] for line in session["cart"]] == ["p2"], session
        assert profile(worker, cid)[1]["event_counts"] == {"product_view": 3, "cart_add": 1}
        time.sleep(1.5)  # a webhook of the attack would have gone out by now
        assert all("attacker-item" not in c["body"].decode() for c in receiver.of(cid))
        assert len(receiver.of(cid)) == hooks_before
    finally:
        c.stop_all()
        receiver.stop()


def test_the_demo_backend_refuses_orders_while_webhooks_are_configured(broker, tmp_path):
    subs = [{"id": "main", "url": "http://127.0.0.1:9/x", "secret": "alias-webhook-secret-0123",
             "events": ["purchase.completed"]}]
    c = Cluster(broker, tmp_path, f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_DEMO_KEY": PUBLISHABLE, "PERSONA_WEBHOOKS": orjson.dumps(subs).decode()})
    try:
        worker = c.start()
        order = {"type": "purchase", "customer_id": f"anon-{uuid.uuid4()}", "order_id": "o-1",
                 "total": 1.0, "currency": "EUR",
                 "items": [{"product_id": "p", "quantity": 1, "price": 1.0}]}
        status, body = http("POST", f"{worker.url}/demo/order", None, orjson.dumps(order),
                            {"Content-Type": "application/json"})
        assert status == 403 and "webhooks" in body["error"]
    finally:
        c.stop_all()


def test_demo_orders_are_rate_limited_per_client(broker, tmp_path):
    c = Cluster(broker, tmp_path, f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_DEMO_KEY": PUBLISHABLE})
    try:
        w = c.start()
        codes = []
        for n in range(8):
            order = {"type": "purchase", "customer_id": f"anon-{uuid.uuid4()}",
                     "order_id": f"o-{n}", "total": 1.0, "currency": "EUR",
                     "items": [{"product_id": "p", "quantity": 1, "price": 1.0}]}
            codes.append(http("POST", f"{w.url}/demo/order", None, orjson.dumps(order),
                              {"Content-Type": "application/json"})[0])
        assert codes[:5] == [202] * 5 and set(codes[5:]) == {429}, codes
    finally:
        c.stop_all()
