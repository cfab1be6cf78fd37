"""Property tests: the profile fold is order independent and idempotent.

Random valid event streams for one customer (validated through app.rules.events) are folded
through session_state.apply_to_session and profile_state.apply_to_profile, as the ingest agent does.
Session-derived counters (sessions, abandoned carts) depend on arrival order by design
(a late event of an earlier session changes no session) and are not compared here.
"""
from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.rules import profile_state as ps
from app.rules import session_state as ss
from app.rules.events import validate_dict

IDLE = 30 * 60 * 1000
T0 = 1_700_000_000_000
STEP = 10 * 60 * 1000  # 10 minutes: with 0..400 steps there are ties, gaps and late events
KINDS = ("product_view", "cart_add", "cart_remove", "purchase", "payment_preference")
PRODUCTS = st.sampled_from(["p1", "p2", "p3", "p4"])
CATEGORIES = st.sampled_from([None, "shoes", "home", "toys"])
PRICES = st.integers(0, 50_000).map(lambda cents: cents / 100)
METHODS = st.sampled_from(["card", "paypal", "invoice"])

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def one_event(draw, index: int) -> dict:
    kind = draw(st.sampled_from(KINDS))
    e = {"event_id": f"ev-{index:03d}", "type": kind, "customer_id": "cust-1",
         "session_id": draw(st.sampled_from([None, None, "A", "B"])),
         "ts": T0 + draw(st.integers(0, 400)) * STEP}
    if kind == "product_view":
        e.update(product_id=draw(PRODUCTS), category=draw(CATEGORIES), price=draw(PRICES))
    elif kind in ("cart_add", "cart_remove"):
        e.update(product_id=draw(PRODUCTS), quantity=draw(st.integers(1, 3)),
                 price=draw(PRICES), category=draw(CATEGORIES))
    elif kind == "purchase":
        items = draw(st.lists(st.fixed_dictionaries({
            "product_id": PRODUCTS, "quantity": st.integers(1, 3), "price": PRICES,
            "category": CATEGORIES}), min_size=1, max_size=3))
        e.update(order_id=f"order-{index:03d}", items=items,
                 total=round(sum(i["price"] * i["quantity"] for i in items), 2),
                 currency=draw(st.sampled_from(["EUR", "EUR", "USD"])),
                 payment_method=draw(st.sampled_from([None, "card", "paypal"])))
    else:
        e.update(method=draw(METHODS))
    return validate_dict(e)


@st.composite
def streams(draw) -> list:
    n = draw(st.integers(1, 40))
    events = [draw(one_event(i)) for i in range(n)]
    dups = draw(st.lists(st.integers(0, n - 1), max_size=6))
    return events + [copy.deepcopy(events[i]) for i in dups]


def fold(events, session=None, profile=None):
    for e in events:
        session = ss.apply_to_session(session, e, IDLE)
        profile = ps.apply_to_profile(profile, e, session)
    return session, profile


def invariant_part(profile: dict) -> dict:
    keys = ("counts", "orders", "spent", "payments", "first_seen", "last_seen", "products",
            "last_purchase", "last_payment", "affinity_ref", "views")
    part = {k: profile[k] for k in keys}
    part["order_ids"] = sorted(profile["order_ids"])
    part["seen"] = sorted(profile["seen"])
    part["preferred_payment"] = ps.preferred_payment(profile)
    return part


def assert_same_profile(a: dict, b: dict) -> None:
    assert invariant_part(a) == invariant_part(b)
    assert a["affinity"].keys() == b["affinity"].keys()
    for cat, score in a["affinity"].items():
        assert b["affinity"][cat] == pytest.approx(score, rel=1e-9, abs=1e-12)


@SETTINGS
@given(events=streams(), data=st.data())
def test_profile_is_order_independent(events, data):
    frozen = copy.deepcopy(events)
    _, reference = fold(events)
    for _ in range(3):
        perm = data.draw(st.permutations(events), label="permutation")
        _, profile = fold(perm)
        assert_same_profile(reference, profile)
    assert events == frozen  # folding never mutates the events
    unique = {e["event_id"]: e for e in events}
    assert sum(reference["counts"].values()) == len(unique)
    assert reference["orders"] == sum(e["type"] == "purchase" for e in unique.values())
    assert reference["first_seen"] == min(e["ts"] for e in events)
    assert reference["last_seen"] == max(e["ts"] for e in events)
    assert reference["affinity_ref"] == ps.affinity_grid(reference["last_seen"])


@SETTINGS
@given(events=streams(), data=st.data())
def test_redelivery_is_a_no_op(events, data):
    session, once = fold(events)
    doubled = [copy.deepcopy(e) for e in events for _ in range(2)]
    assert fold(doubled)[1] == once
    replay = data.draw(st.permutations(events), label="replay")
    assert fold(replay, session, once)[1] is once


@given(items=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["", "a", "b", "c"])),
                      max_size=40),
       limit=st.integers(1, 12), data=st.data())
@SETTINGS
def test_bounded_by_ts_in_any_order_keeps_the_newest_sorted(items, limit, data):
    """Folding items one by one in any order gives the newest ``limit`` of them, newest
    first: the front insertion for an item newer than the list's first is the sort's
    answer, never a different one."""
    docs = [{"ts": ts, "event_id": eid, "n": n} for n, (ts, eid) in enumerate(items)]
    order = data.draw(st.permutations(docs))
    kept: list = []
    for doc in order:
        kept = ss.bounded_by_ts(kept, doc, limit)
    def key(d):
        return d["ts"], d["event_id"]
    assert [key(d) for d in kept] == sorted(map(key, docs), reverse=True)[:limit]
    assert all(key(a) >= key(b) for a, b in itertools.pairwise(kept))
