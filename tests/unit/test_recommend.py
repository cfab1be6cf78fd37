"""Pure tests of app.rules.recommend over sessions and profiles built by the real rules."""
from __future__ import annotations

import itertools

from app.rules import profile_state as ps
from app.rules import session_state as ss
from app.rules.recommend import recommend

IDLE = 30 * 60 * 1000
T0 = 1_700_000_000_000
_n = itertools.count()


def ev(kind, ts, **fields):
    return {"event_id": f"e{next(_n):05d}", "type": kind, "customer_id": "c1",
            "session_id": None, "ts": ts, "v": 1, **fields}


def view(pid, ts, category="shoes"):
    return ev("product_view", ts, product_id=pid, category=category, price=1.0)


def add(pid, ts, category="shoes"):
    return ev("cart_add", ts, product_id=pid, quantity=1, price=10.0, category=category)


def buy(pid, ts, category="shoes"):
    return ev("purchase", ts, order_id=f"o-{pid}", total=5.0, currency="EUR",
              items=[{"product_id": pid, "quantity": 1, "price": 5.0, "category": category}])


def fold(events):
    session = profile = None
    for e in events:
        session = ss.apply_to_session(session, e, IDLE)
        profile = ps.apply_to_profile(profile, e, session)
    return session, profile


def pids(result):
    return [p["product_id"] for p in result["products"]]


def test_nothing_known():
    assert recommend(None, None) == {"products": [], "categories": [], "as_of": 0}


def test_bought_products_excluded():
    session, profile = fold([view("p1", T0), add("p1", T0 + 1), view("p2", T0 + 2),
                             buy("p1", T0 + 3)])
    out = recommend(session, profile)
    assert "p1" not in pids(out)
    assert pids(out) == ["p2"]


def test_bought_in_earlier_session_excluded_from_cart_too():
    session, profile = fold([buy("p1", T0), add("p1", T0 + 2 * IDLE), add("p2", T0 + 2 * IDLE)])
    assert "p1" in ss.cart_lines(session)  # re-added after buying
    assert pids(recommend(session, profile)) == ["p2"]


def test_cart_ranks_above_views():
    session, profile = fold([add("cart", T0), view("v1", T0 + 10), view("v2", T0 + 20)])
    out = recommend(session, profile)
    assert pids(out) == ["cart", "v2", "v1"]
    first = out["products"][0]
    assert first["reasons"] == ["in_cart"]
    assert "viewed_this_session" in out["products"][1]["reasons"]
    assert "viewed_before" in out["products"][1]["reasons"]


def test_current_session_views_beat_older_views():
    session, profile = fold([view("old", T0), view("new", T0 + 2 * IDLE)])
    out = recommend(session, profile)
    assert pids(out) == ["new", "old"]
    assert out["products"][1]["reasons"] == ["viewed_before"]


def test_scores_accumulate_and_sorted_descending():
    session, profile = fold([view("p1", T0), add("p1", T0 + 1), view("p2", T0 + 2)])
    scores = [p["score"] for p in recommend(session, profile)["products"]]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 5.0  # cart (5) plus view signals


def test_categories_ranked():
    session, profile = fold([view("a", T0, "home"), add("b", T0 + 1, "toys"),
                             add("c", T0 + 2, "toys"), view("d", T0 + 3, "garden")])
    cats = recommend(session, profile)["categories"]
    names = [c["category"] for c in cats]
    assert names[0] == "toys"
    assert set(names) == {"home", "toys", "garden"}
    assert [c["score"] for c in cats] == sorted((c["score"] for c in cats), reverse=True)


def test_limit_applies_to_products_and_categories():
    session, profile = fold([view(f"p{i}", T0 + i, f"cat{i}") for i in range(15)])
    out = recommend(session, profile, limit=4)
    assert len(out["products"]) == 4 and len(out["categories"]) == 4
    assert pids(out) == ["p14", "p13", "p12", "p11"]


def test_as_of_is_newest_of_session_and_profile():
    session, profile = fold([view("p1", T0), view("p2", T0 + 2 * IDLE), view("p0", T0 + 5)])
    assert recommend(session, profile)["as_of"] == T0 + 2 * IDLE
    assert recommend(None, profile)["as_of"] == profile["last_seen"]
    assert recommend(session, None)["as_of"] == session["last_event_at"]
    stale_session, _ = fold([view("x", T0 - 10 * IDLE)])
    assert recommend(stale_session, profile)["as_of"] == profile["last_seen"]


def test_profile_only():
    _, profile = fold([view("p1", T0), view("p2", T0 + 1)])
    out = recommend(None, profile)
    assert pids(out) == ["p2", "p1"]
    assert all(p["reasons"] == ["viewed_before"] for p in out["products"])
