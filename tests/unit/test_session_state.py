"""Pure tests of app.rules.session_state: session boundaries, cart, freshest-wins, purity."""
from __future__ import annotations

import copy
import itertools

import pytest

from app.rules import dedupe
from app.rules import session_state as ss
from tests.support.builders import IDLE, T0, ev  # noqa: E402


def add(pid, ts=T0, qty=1, price=10.0, **kw):
    return ev("cart_add", ts, product_id=pid, quantity=qty, price=price, category="cat", **kw)


def remove(pid, ts=T0, qty=1, **kw):
    return ev("cart_remove", ts, product_id=pid, quantity=qty, price=None, category=None, **kw)


def purchase(pids, ts=T0, order_id="o1", **kw):
    items = [{"product_id": p, "quantity": 1, "price": 10.0} for p in pids]
    return ev("purchase", ts, order_id=order_id, items=items, total=10.0 * len(pids),
              currency="EUR", **kw)


def fold(events, session=None):
    for e in events:
        session = ss.apply_to_session(session, e, IDLE)
    return session


def test_first_event_starts_session():
    s = ss.apply_to_session(None, ev("search", query="q", results_count=1), IDLE)
    assert s["started_at"] == s["last_event_at"] == T0
    assert s["session_id"] == f"s-{T0}"
    assert s["events"] == 1 and s["customer_id"] == "c1"


def test_session_id_from_event():
    s = ss.apply_to_session(None, ev("search", query="q", session_id="web-42"), IDLE)
    assert s["session_id"] == "web-42"


def test_idle_gap_starts_new_session_exact_idle_does_not():
    s = fold([add("p1"), ev("search", T0 + IDLE, query="q")])
    assert s["session_id"] == f"s-{T0}" and s["events"] == 2
    s2 = ss.apply_to_session(s, ev("search", T0 + 2 * IDLE + 1, query="q"), IDLE)
    assert s2["session_id"] == f"s-{T0 + 2 * IDLE + 1}"
    assert s2["events"] == 1 and s2["cart"] == {}


def test_new_session_id_starts_new_session():
    s = fold([add("p1", session_id="A"), ev("search", T0 + 1000, query="q", session_id="B")])
    assert s["session_id"] == "B" and s["events"] == 1 and s["cart"] == {}


def test_older_event_of_other_session_id_ignored():
    s = fold([ev("search", T0, query="q", session_id="B")])
    assert ss.apply_to_session(s, add("p1", T0 - 1000, session_id="A"), IDLE) is s


def test_late_event_older_than_idle_ignored():
    s = fold([add("p1", T0)])
    late = add("p2", T0 - IDLE - 1)
    assert ss.apply_to_session(s, late, IDLE) is s


def test_late_event_within_idle_merged_start_moves_back():
    s = fold([add("p1", T0)])
    s2 = ss.apply_to_session(s, add("p2", T0 - IDLE), IDLE)
    assert s2 is not s
    assert s2["started_at"] == T0 - IDLE and s2["last_event_at"] == T0
    assert set(ss.cart_lines(s2)) == {"p1", "p2"} and s2["events"] == 2


def test_duplicate_event_returns_same_object():
    e = add("p1")
    s = fold([e, add("p2", T0 + 5)])
    assert ss.apply_to_session(s, dict(e), IDLE) is s


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
def test_cart_net_quantities_order_independent(perm):
    evs = [add("p1", T0, 2, 10.0), remove("p1", T0 + 1, 1), add("p1", T0 + 2, 3, 12.5),
           remove("p2", T0 + 3, 1)]
    s = fold([evs[i] for i in perm])
    assert s["cart"]["p1"]["quantity"] == 4
    assert s["cart"]["p1"]["price"] == 12.5  # the newest price wins
    assert s["cart"]["p2"]["quantity"] == -1
    assert ss.cart_lines(s) == {"p1": s["cart"]["p1"]}
    assert ss.cart_value(s) == 50.0


def test_lines_at_or_below_zero_hidden():
    s = fold([add("p1", qty=2), remove("p1", T0 + 1, 2), add("p2", T0 + 2, 1, 3.333)])
    assert set(ss.cart_lines(s)) == {"p2"}
    assert [line["product_id"] for line in ss.view(s)["cart"]] == ["p2"]
    assert ss.cart_value(s) == 3.33
    assert not ss.has_purchase(s) and ss.has_open_cart(s)


def test_cart_value_ignores_missing_price():
    s = fold([add("p1", qty=2, price=None), add("p2", T0 + 1, 3, 1.5)])
    assert ss.cart_value(s) == 4.5


def test_purchase_removes_bought_not_newer_lines():
    s = fold([add("p1", T0), add("p2", T0 + 1), add("p3", T0 + 10),
              purchase(["p1", "p3", "p9"], T0 + 5, payment_method="card")])
    assert set(ss.cart_lines(s)) == {"p2", "p3"}  # p3 changed after the purchase
    assert s["orders"] == [{"order_id": "o1", "total": 30.0, "currency": "EUR", "ts": T0 + 5}]
    assert ss.has_purchase(s) and not ss.has_open_cart(s)
    assert s["payment"]["method"] == "card"


def test_purchase_at_same_ts_as_cart_change_removes_it():
    s = fold([add("p1", T0), purchase(["p1"], T0)])
    assert ss.cart_lines(s) == {}


def test_same_order_id_listed_once():
    s = fold([purchase(["p1"], T0, "o1"), purchase(["p1"], T0 + 1, "o1"), purchase(["p2"], T0 + 2, "o2")])
    assert [o["order_id"] for o in s["orders"]] == ["o1", "o2"]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_payment_freshest_wins(order):
    evs = [ev("payment_preference", T0 + 100, method="new"),
           ev("payment_preference", T0, method="old")]
    s = fold([evs[i] for i in order])
    assert s["payment"] == {"method": "new", "at": [T0 + 100, evs[0]["event_id"]]}
    assert ss.view(s)["payment_method"] == "new"


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_payment_tie_broken_by_event_id(order):
    evs = [ev("payment_preference", T0, method="a", event_id="id-a"),
           ev("payment_preference", T0, method="z", event_id="id-z")]
    assert fold([evs[i] for i in order])["payment"]["method"] == "z"


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_checkout_freshest_wins_and_sets_payment(order):
    evs = [ev("checkout_start", T0 + 50, cart_value=20.0, payment_method="card"),
           ev("checkout_start", T0, cart_value=5.0, payment_method="cash")]
    s = fold([evs[i] for i in order])
    assert s["checkout"]["cart_value"] == 20.0
    assert s["payment"]["method"] == "card"
    assert ss.view(s)["checkout_started_at"] == T0 + 50


def test_older_purchase_does_not_override_payment():
    s = fold([ev("payment_preference", T0 + 100, method="paypal"),
              purchase(["p1"], T0 + 10, payment_method="card")])
    assert s["payment"]["method"] == "paypal"


def test_views_and_searches_bounded_newest_first():
    evs = [ev("product_view", T0 + i, product_id=f"p{i}", category="c", price=1.0)
           for i in range(ss.MAX_VIEWS + 5)]
    s = fold(list(reversed(evs)))
    assert [v["ts"] for v in s["views"]] == [T0 + i for i in range(ss.MAX_VIEWS + 4, 4, -1)]
    s = fold([ev("search", T0 + i, query=f"q{i}", results_count=i) for i in range(15)])
    assert len(s["searches"]) == ss.MAX_SEARCHES and s["searches"][0]["query"] == "q14"


def test_event_ids_bounded():
    s = fold([ev("search", T0 + i, query="q") for i in range(ss.MAX_IDS + 10)])
    assert dedupe.count(s) == ss.MAX_IDS and s["events"] == ss.MAX_IDS + 10


def test_input_never_mutated():
    evs = [add("p1", T0), add("p1", T0 + 1), remove("p1", T0 + 2),
           ev("product_view", T0 + 3, product_id="p1", category="c", price=2.0),
           ev("search", T0 + 4, query="q", results_count=0),
           ev("checkout_start", T0 + 5, cart_value=1.0, payment_method="card"),
           ev("payment_preference", T0 + 6, method="paypal"),
           purchase(["p1"], T0 + 7, payment_method="card"),
           add("p2", T0 - 10), add("p3", T0 + IDLE * 3)]
    session = None
    for e in evs:
        before_s, before_e = copy.deepcopy(session), copy.deepcopy(e)
        new = ss.apply_to_session(session, e, IDLE)
        assert session == before_s and e == before_e
        session = new


def test_view_fields():
    s = fold([ev("product_view", T0, product_id="p1", category="c", price=2.0),
              ev("search", T0 + 1, query="q", results_count=3), add("p1", T0 + 2, 2, 2.0),
              ev("checkout_start", T0 + 3, cart_value=4.0, payment_method="card"),
              add("p2", T0 - 7)])
    v = ss.view(s)
    assert set(v) == {"customer_id", "session_id", "started_at", "last_event_at", "events",
                      "recent_views", "recent_searches", "cart", "cart_value",
                      "checkout_started_at", "payment_method", "orders", "as_of"}
    assert v["as_of"] == v["last_event_at"] == T0 + 3
    assert v["started_at"] == T0 - 7 and v["events"] == 5
    assert v["recent_views"] == [{"product_id": "p1", "category": "c", "price": 2.0, "ts": T0}]
    assert v["recent_searches"] == [{"query": "q", "results_count": 3, "ts": T0 + 1}]
    assert {"product_id": "p1", "quantity": 2, "price": 2.0, "category": "cat"} in v["cart"]
    assert v["cart_value"] == 14.0
    assert v["checkout_started_at"] == T0 + 3 and v["payment_method"] == "card"
    assert v["orders"] == []


def test_late_cart_add_older_than_purchase_stays_bought():
    in_order = fold([add("p1", T0), purchase(["p1"], T0 + 5)])
    late = fold([purchase(["p1"], T0 + 5), add("p1", T0)])
    assert ss.cart_lines(in_order) == {}
    assert ss.cart_lines(late) == ss.cart_lines(in_order)
