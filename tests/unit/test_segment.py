"""The pure Segment-spec mapping (``app.rules.segment``): calls -> Persona events or reasons."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.rules.events import validate_dict
from app.rules.segment import INVALID, STORED, TRACKED, UNUSED, convert, corrected_ts

NOW = 1_700_000_000_000  # the receive time, passed in: the rules read no clock
ISO = "2023-11-14T22:13:20.000Z"  # = NOW


def track(event: str, props: dict, **call) -> dict:
    return {"type": "track", "event": event, "properties": props, "userId": "c-1",
            "messageId": "m-1", **call}


def one(call, server=True, sent_at=None) -> dict:
    got = convert(call, server, NOW, sent_at)
    assert got.outcome == STORED, got
    (event,) = got.events
    validate_dict(event)
    return event


@pytest.mark.parametrize(("name", "props", "expected"), [
    ("Product Viewed", {"product_id": "p1", "category": "shoes", "price": 9.5},
     {"type": "product_view", "product_id": "p1", "category": "shoes", "price": 9.5}),
    ("Products Searched", {"query": "boots"}, {"type": "search", "query": "boots"}),
    ("Product Added", {"product_id": 42, "price": 3, "quantity": 2},
     {"type": "cart_add", "product_id": "42", "price": 3, "quantity": 2}),
    ("Product Removed", {"product_id": "p1"},
     {"type": "cart_remove", "product_id": "p1", "quantity": 1}),
    ("Checkout Started", {"value": 30.0, "revenue": 25.0},
     {"type": "checkout_start", "cart_value": 30.0}),
    ("Payment Info Entered", {"payment_method": "card"},
     {"type": "payment_preference", "method": "card"}),
    ("Order Completed", {"order_id": "o1", "revenue": 20.0, "currency": "eur",
                         "products": [{"product_id": "p1", "price": 10.0, "quantity": 2}]},
     {"type": "purchase", "order_id": "o1", "total": 20.0, "currency": "EUR",
      "items": [{"product_id": "p1", "price": 10.0, "quantity": 2}]}),
])
def test_ecommerce_spec_v2_names_map_onto_persona_types(name, props, expected):
    event = one(track(name, props))
    assert {k: event[k] for k in expected} == expected
    assert event["customer_id"] == "c-1" and event["event_id"] == "m-1"
    assert event["segment"]["event"] == name and event["segment"]["receivedAt"] == NOW


def test_total_wins_over_revenue_and_ids_are_kept():
    event = one(track("Order Completed", {
        "order_id": 7, "total": 24.0, "revenue": 20.0, "currency": "USD",
        "products": [{"product_id": "p", "price": 20.0}]}, anonymousId="a-9"))
    assert event["total"] == 24.0 and event["order_id"] == "7"
    assert event["items"] == [{"product_id": "p", "quantity": 1, "price": 20.0}]
    assert event["segment"]["userId"] == "c-1" and event["segment"]["anonymousId"] == "a-9"


def test_anonymous_ids_become_persona_anonymous_ids():
    call = track("Product Viewed", {"product_id": "p"}, userId=None, anonymousId="4f1c-9")
    assert one(call)["customer_id"] == "anon-4f1c-9"
    odd = one({**call, "anonymousId": "has spaces/slashes"})["customer_id"]
    assert odd.startswith("anon-") and odd == one({**call, "anonymousId": "has spaces/slashes"}
                                                  )["customer_id"]
    assert one({**call, "anonymousId": "anon-x"})["customer_id"] == "anon-x"


def test_message_ids_that_do_not_fit_are_derived_the_same_way_every_time():
    long = "m" * 200
    a, b = one(track("Products Searched", {"query": "q"}, messageId=long)), \
        one(track("Products Searched", {"query": "q"}, messageId=long))
    assert a["event_id"] == b["event_id"] != long and len(a["event_id"]) <= 128
    missing = track("Products Searched", {"query": "q"}, messageId=None)
    resent = {**missing, "sentAt": "2030-01-01T00:00:00Z"}  # a retry: only sentAt differs
    assert one(missing)["event_id"] == one(resent)["event_id"]


def test_clock_skew_is_corrected_as_segment_does():
    # The device clock runs an hour fast; the call happened 5 s before it was sent.
    call = {"timestamp": "2023-11-14T23:13:15.000Z", "sentAt": "2023-11-14T23:13:20.000Z"}
    assert corrected_ts(call, None, NOW) == NOW - 5000
    assert corrected_ts({"timestamp": call["timestamp"]}, call["sentAt"], NOW) == NOW - 5000
    assert corrected_ts({"timestamp": ISO}, None, NOW) == NOW  # no sentAt: as given
    assert corrected_ts({}, call["sentAt"], NOW) == NOW  # no timestamp: the receive time


def test_identify_and_alias_from_a_server_key_are_persona_aliases():
    event = one({"type": "identify", "userId": "c-1", "anonymousId": "a1", "messageId": "i"})
    assert (event["type"], event["customer_id"], event["anonymous_id"]) == ("alias", "c-1",
                                                                           "anon-a1")
    event = one({"type": "alias", "userId": "c-1", "previousId": "a1"})
    assert (event["customer_id"], event["anonymous_id"]) == ("c-1", "anon-a1")
    assert convert({"type": "identify", "userId": "c-1", "anonymousId": "a1"}, False,
                   NOW).outcome == UNUSED  # a browser's identify merges nothing
    assert convert({"type": "identify", "userId": "c-1"}, True, NOW).outcome == UNUSED
    bad = convert({"type": "identify", "userId": "anon-1", "anonymousId": "a1"}, True, NOW)
    assert bad.outcome == INVALID and "userId" in bad.errors


@pytest.mark.parametrize("call", [
    {"type": "page", "name": "Home", "anonymousId": "a"},
    {"type": "screen", "userId": "c"}, {"type": "group", "userId": "c", "groupId": "g"},
    track("Product List Viewed", {"list_id": "x"}), track("Order Refunded", {"order_id": "o"}),
])
def test_calls_persona_does_not_use_are_acknowledged_not_stored(call):
    assert convert(call, True, NOW).outcome == UNUSED


@pytest.mark.parametrize(("call", "reason", "field"), [
    (track("Product Viewed", {}), "invalid Segment Product Viewed", "properties.product_id"),
    (track("Order Completed", {"order_id": "o", "total": 1, "currency": "EUR"}),
     "invalid Segment Order Completed", "properties.products"),
    (track("Order Completed", {"order_id": "o", "total": 1, "currency": "euro",
                               "products": [{"product_id": "p", "price": 1}]}),
     "invalid Segment Order Completed", "properties.currency"),
    (track("Payment Info Entered", {}), "invalid Segment Payment Info Entered",
     "properties.payment_method"),
    (track("Product Added", {"product_id": "p"}, userId=None), "invalid Segment Product Added",
     "userId"),
    (track("Product Added", {"product_id": "p"}, userId="white space"),
     "invalid Segment Product Added", "userId"),
    (track("Product Added", {"product_id": "p"}, timestamp="yesterday"),
     "invalid Segment timestamp", "timestamp"),
    (track("Product Added", "not an object"), "invalid Segment Product Added", "properties"),
    ({"type": "alias", "userId": "c"}, "invalid Segment alias call", "previousId"),
    ({"type": "nonsense"}, "invalid Segment call", "type"),
    ("not an object", "invalid Segment call", "_schema"),
])
def test_known_calls_with_invalid_fields_name_the_reason_and_the_callers_field(call, reason,
                                                                                field):
    got = convert(call, True, NOW)
    assert got.outcome == INVALID and got.reason == reason and field in got.errors, got


@given(st.dictionaries(st.sampled_from(["product_id", "price", "quantity", "category", "query",
                                        "order_id", "total", "revenue", "currency", "products",
                                        "payment_method", "value"]),
                       st.none() | st.integers() | st.floats() | st.text(max_size=5)
                       | st.lists(st.dictionaries(st.text(max_size=3), st.integers()),
                                  max_size=2)),
       st.sampled_from(sorted(TRACKED)))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a shared machine
def test_any_properties_give_a_valid_event_or_a_reason_never_an_exception(props, name):
    got = convert(track(name, props), True, NOW)
    assert got.outcome in (STORED, INVALID)
    for event in got.events:
        validate_dict(event)
