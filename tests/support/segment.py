"""What the Segment-spec tests share: a shopper's journey sent with a real Segment-protocol
client library, its expected profile, and reading ``persona_segment_calls_total``.

The journey (E-commerce spec v2 names and properties, as a shop's backend sends them): an
anonymous visitor views a product (and the home page, which Persona does not store); at
sign-in the backend's ``identify`` carries both ids, which merges the anonymous view into the
customer; then a search, a view, a product list (not used), two adds, a remove, checkout,
payment and the order; and an ``Order Completed`` without products, which must go to
``events-dlq``.
"""
from __future__ import annotations

import re

from app.harness.net import http
from tests.conftest import ADMIN

TENT = {"product_id": "p-tent", "category": "camping", "price": 120.0}
MUG = {"product_id": "p-mug", "category": "kitchen", "price": 9.5}
BOOTS = {"product_id": "p-boots", "category": "shoes", "price": 89.9}


def journey(client, cid: str, anon: str) -> None:
    """Every call of the journey through ``client`` (analytics-python's API; rudder-sdk-python
    has the same one)."""
    client.page(anonymous_id=anon, name="Home", properties={"path": "/"})
    client.track(anonymous_id=anon, event="Product Viewed", properties=BOOTS)
    client.identify(user_id=cid, anonymous_id=anon, traits={"email": f"{cid}@example.com"})
    client.track(user_id=cid, event="Products Searched", properties={"query": "tent"})
    client.track(user_id=cid, event="Product Viewed", properties=TENT)
    client.track(user_id=cid, event="Product List Viewed", properties={
        "list_id": "camping", "products": [TENT]})
    client.track(user_id=cid, event="Product Added", properties={**TENT, "quantity": 1})
    client.track(user_id=cid, event="Product Added", properties={**MUG, "quantity": 2})
    client.track(user_id=cid, event="Product Removed", properties={**MUG, "quantity": 2})
    client.track(user_id=cid, event="Checkout Started", properties={
        "order_id": f"o-{cid}", "value": 120.0, "currency": "EUR", "products": [TENT]})
    client.track(user_id=cid, event="Payment Info Entered", properties={
        "checkout_id": f"c-{cid}", "payment_method": "paypal"})
    client.track(user_id=cid, event="Order Completed", properties={
        "order_id": f"o-{cid}", "total": 120.0, "revenue": 100.0, "currency": "EUR",
        "products": [{**TENT, "quantity": 1}]})
    client.track(user_id=cid, event="Order Completed", properties={
        "order_id": f"broken-{cid}", "total": 5.0, "currency": "EUR"})


#: The customer's profile after the journey: the anonymous view merged in.
EXPECTED_COUNTS = {"product_view": 2, "search": 1, "cart_add": 2, "cart_remove": 1,
                   "checkout_start": 1, "payment_preference": 1, "purchase": 1}


def check_profile(profile: dict) -> None:
    assert profile["event_counts"] == EXPECTED_COUNTS, profile["event_counts"]
    assert profile["orders"] == 1 and profile["total_spent"] == 120.0
    assert profile["currency"] == "EUR" and profile["preferred_payment_method"] == "paypal"
    assert set(profile["purchased_products"]) == {"p-tent"}
    assert {a["category"] for a in profile["category_affinities"]} >= {"shoes", "camping"}


def segment_calls(worker) -> dict:
    """``{(call, outcome): count}`` of ``persona_segment_calls_total`` on ``worker``."""
    status, text = http("GET", f"{worker.url}/metrics", ADMIN)
    assert status == 200, text
    out = {}
    for call, outcome, value in re.findall(
            r'^persona_segment_calls_total\{call="(\w+)",outcome="(\w+)"\} (\S+)$', text, re.M):
        out[(call, outcome)] = float(value)
    return out


def dead_letters(broker, marker: str) -> list[dict]:
    """The ``events-dlq`` records whose raw call mentions ``marker``."""
    import orjson
    records = [orjson.loads(v) for v in broker.read_all("events-dlq")]
    return [r for r in records if marker in r["raw"]]
