"""Pure tests of app.rules.profile_state, folded through session_state like the agents do."""
from __future__ import annotations

import copy
import random

import pytest

from app.rules import profile_state as ps
from app.rules import session_state as ss

HL = ps.HALF_LIFE_MS
from tests.support.builders import IDLE, T0, ev  # noqa: E402


def view_ev(pid="p1", ts=T0, category="shoes", **kw):
    return ev("product_view", ts, product_id=pid, category=category, price=1.0, **kw)


def add(pid="p1", ts=T0, category="shoes", **kw):
    return ev("cart_add", ts, product_id=pid, quantity=1, price=10.0, category=category, **kw)


def buy(ts=T0, order_id="o1", total=10.0, currency="EUR", items=None, **kw):
    items = items or [{"product_id": "p1", "quantity": 1, "price": total, "category": "shoes"}]
    return ev("purchase", ts, order_id=order_id, items=items, total=total, currency=currency, **kw)


def pay(method, ts=T0, **kw):
    return ev("payment_preference", ts, method=method, **kw)


def fold(events, session=None, profile=None):
    """Apply each event to the session, then to the profile with the new session."""
    for e in events:
        session = ss.apply_to_session(session, e, IDLE)
        profile = ps.apply_to_profile(profile, e, session)
    return profile


def test_counts_per_type():
    p = fold([view_ev(), view_ev(ts=T0 + 1), add(ts=T0 + 2), pay("card", T0 + 3)])
    assert p["counts"] == {"product_view": 2, "cart_add": 1, "payment_preference": 1}
    assert ps.view(p)["event_counts"] == p["counts"]


def test_first_last_seen_out_of_order():
    p = fold([view_ev(ts=T0 + 500), view_ev(ts=T0 - 100), view_ev(ts=T0 + 200)])
    assert (p["first_seen"], p["last_seen"]) == (T0 - 100, T0 + 500)
    assert ps.view(p)["as_of"] == T0 + 500


def test_dedupe_by_event_id():
    e = add()
    once = fold([e, view_ev(ts=T0 + 1)])
    session = ss.apply_to_session(None, e, IDLE)
    assert ps.apply_to_profile(once, dict(e), session) is once
    assert fold([e, view_ev(ts=T0 + 1, event_id="v"), e, dict(e)])["counts"] == {
        "cart_add": 1, "product_view": 1}


def test_order_id_counted_once_with_different_event_ids():
    p = fold([buy(payment_method="card"), buy(ts=T0 + 5, payment_method="card")])
    assert p["orders"] == 1 and p["order_ids"] == ["o1"]
    assert p["spent"] == {"EUR": {"total": 10.0, "orders": 1}}
    assert p["products"] == {"p1": 1}
    assert p["payments"] == {"card": 1}
    assert ps.affinity_scores(p) == pytest.approx({"shoes": ps.AFFINITY_WEIGHTS["purchase"]})


def test_spent_per_currency_average_and_primary():
    p = fold([buy(T0, "o1", 10.0, "EUR"), buy(T0 + 1, "o2", 25.5, "EUR"),
              buy(T0 + 2, "o3", 100.0, "USD")])
    v = ps.view(p)
    assert v["spent_by_currency"] == {"EUR": {"total": 35.5, "orders": 2},
                                      "USD": {"total": 100.0, "orders": 1}}
    assert v["currency"] == "EUR" and v["total_spent"] == 35.5
    assert v["average_order_value"] == 17.75
    assert v["orders"] == 3 and v["purchased_products"] == {"p1": 3}


def test_empty_spend_view():
    v = ps.view(fold([view_ev()]))
    assert v["currency"] is None and v["total_spent"] == 0.0
    assert v["average_order_value"] == 0.0 and v["last_purchase"] is None


def test_sessions_purchase_sessions_conversion():
    gap = IDLE + 1
    p = fold([view_ev(ts=T0), buy(T0 + 1, "o1"), buy(T0 + 2, "o2"),   # first visit: bought
              view_ev(ts=T0 + 2 + gap),                                  # second visit
              view_ev(ts=T0 + 3 + 2 * gap), buy(T0 + 4 + 2 * gap, "o3")])  # third visit: bought
    v = ps.view(p)
    assert v["sessions"] == 3 and v["sessions_with_purchase"] == 2
    assert v["conversion_rate"] == round(2 / 3, 4)
    assert v["abandoned_carts"] == 0


def test_session_id_change_counts_sessions():
    p = fold([view_ev(session_id="A"), view_ev(ts=T0 + 1, session_id="B"),
              view_ev(ts=T0 + 2, session_id="B")])
    assert p["sessions"] == 2 and ps.view(p)["conversion_rate"] == 0.0


def test_abandoned_cart_counted_when_next_session_starts():
    p = fold([add("p1", T0)])
    assert p["abandoned_carts"] == 0  # still open, not yet abandoned
    p = fold([view_ev(ts=T0 + IDLE + 1)], ss.apply_to_session(None, add("p1", T0), IDLE), p)
    assert p["abandoned_carts"] == 1 and p["sessions"] == 2


def test_cart_bought_or_emptied_is_not_abandoned():
    bought = fold([add("p1", T0), buy(T0 + 1, items=[{"product_id": "p1", "quantity": 1,
                                                        "price": 10.0}]),
                   view_ev(ts=T0 + 2 + IDLE)])
    emptied = fold([add("p1", T0), ev("cart_remove", T0 + 1, product_id="p1", quantity=1),
                    view_ev(ts=T0 + 2 + IDLE)])
    assert bought["abandoned_carts"] == 0 and emptied["abandoned_carts"] == 0
    assert bought["sessions"] == emptied["sessions"] == 2


def _affinity_events():
    return [view_ev("p1", T0, "shoes"), view_ev("p2", T0 + 3 * HL // 2, "home"),
            add("p3", T0 + HL // 3, "shoes"), add("p4", T0 - HL, "toys"),
            buy(T0 + HL, "o9", items=[{"product_id": "p5", "quantity": 1, "price": 3.0,
                                        "category": "garden"},
                                       {"product_id": "p6", "quantity": 2, "price": 3.0,
                                        "category": "shoes"}]),
            view_ev("p7", T0 + 2 * HL, None)]


def test_affinity_order_independent():
    events = _affinity_events()
    reference = fold(events)
    rng = random.Random(7)
    for _ in range(8):
        shuffled = events[:]
        rng.shuffle(shuffled)
        p = fold(shuffled)
        assert p["affinity_ref"] == reference["affinity_ref"] == ps.affinity_grid(T0 + 2 * HL)
        assert p["affinity"] == pytest.approx(reference["affinity"], rel=1e-9)
    expected_shoes = 1 * 2 ** -2 + 3 * 2 ** (-(2 - 1 / 3)) + 5 * 2 ** -1
    assert ps.affinity_scores(reference)["shoes"] == pytest.approx(expected_shoes, rel=1e-6)


def test_half_life_halves_weight():
    p = fold([view_ev("p1", T0, "old"), view_ev("p2", T0 + HL, "new")])
    assert ps.affinity_scores(p)["old"] == pytest.approx(0.5)
    assert ps.affinity_scores(p)["new"] == pytest.approx(1.0)
    ranked = ps.affinities(p)
    assert [a["category"] for a in ranked] == ["new", "old"]
    assert ranked[0]["share"] == pytest.approx(2 / 3, abs=1e-4)


def test_affinity_weights_by_type():
    p = fold([view_ev("p1", T0, "a"), add("p2", T0, "b"),
              buy(T0, items=[{"product_id": "p3", "quantity": 1, "price": 1.0, "category": "c"}])])
    assert ps.affinity_scores(p) == pytest.approx({"a": 1.0, "b": 3.0, "c": 5.0})


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_preferred_payment_most_used(order):
    evs = [pay("card", T0), pay("card", T0 + 1), pay("paypal", T0 + 2)]
    p = fold([evs[i] for i in order])
    assert ps.preferred_payment(p) == "card"
    assert p["last_payment"]["method"] == "paypal"


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0)])
def test_preferred_payment_tie_goes_to_latest(order):
    evs = [pay("card", T0), ev("checkout_start", T0 + 1, payment_method="paypal"),
           buy(T0 + 9, payment_method="paypal"), pay("card", T0 + 2)]
    p = fold([evs[i] for i in order])
    assert p["payments"] == {"card": 2, "paypal": 2}
    assert ps.view(p)["preferred_payment_method"] == "paypal"


def test_no_payment_method():
    assert ps.preferred_payment(fold([view_ev()])) is None


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_last_purchase_freshest_wins(order):
    evs = [buy(T0 + 100, "new", 7.0), buy(T0, "old", 3.0)]
    p = fold([evs[i] for i in order])
    assert p["last_purchase"] == {"order_id": "new", "total": 7.0, "currency": "EUR",
                                  "at": [T0 + 100, evs[0]["event_id"]]}


def test_recent_views_newest_first_bounded():
    p = fold([view_ev(f"p{i}", T0 + i) for i in range(ps.MAX_VIEWS + 3)][::-1])
    rv = ps.view(p)["recent_views"]
    assert len(rv) == ps.MAX_VIEWS and rv[0]["product_id"] == f"p{ps.MAX_VIEWS + 2}"
    assert set(rv[0]) == {"product_id", "category", "price", "ts"}


def test_input_never_mutated():
    events = _affinity_events() + [pay("card", T0 + 1), buy(T0 + 2, "o2", payment_method="x"),
                                   view_ev(ts=T0 + 5 * IDLE)]
    session = profile = None
    for e in events:
        session = ss.apply_to_session(session, e, IDLE)
        snap = copy.deepcopy((profile, e, session))
        new = ps.apply_to_profile(profile, e, session)
        assert (profile, e, session) == snap
        assert new is not profile
        profile = new


def test_affinity_reference_moves_once_per_half_life():
    """The stored scores are rescaled only when the newest event crosses a grid point."""
    start = ps.affinity_grid(T0) + 1000
    p = fold([view_ev("p1", start, "a")])
    ref = p["affinity_ref"]
    assert ref == ps.affinity_grid(start) <= start
    later = fold([view_ev("p2", start + HL // 4, "b")], profile=p)
    assert later["affinity_ref"] == ref and later["affinity"]["a"] == p["affinity"]["a"]
    assert ps.affinity_scores(later)["a"] == pytest.approx(2 ** -0.25)
    moved = fold([view_ev("p3", ref + HL, "c")], profile=later)
    assert moved["affinity_ref"] == ref + HL
    assert ps.affinity_scores(moved)["a"] == pytest.approx(2 ** -((ref + HL - start) / HL))


def test_a_reference_written_before_the_grid_is_moved_onto_it():
    """A profile whose reference is its newest event (the rule before the grid)."""
    on_grid = fold([view_ev("p1", T0 + 7, "a"), view_ev("p2", T0 + 9, "b")])
    first = fold([view_ev("p1", T0 + 7, "a")])
    legacy = {**first, "affinity_ref": T0 + 7,
              "affinity": {c: s * 2 ** ((first["affinity_ref"] - (T0 + 7)) / HL)
                           for c, s in first["affinity"].items()}}
    assert ps.affinity_scores(legacy) == pytest.approx(ps.affinity_scores(first))
    moved = fold([view_ev("p2", T0 + 9, "b")], profile=legacy)
    assert moved["affinity_ref"] == on_grid["affinity_ref"]
    assert moved["affinity"] == pytest.approx(on_grid["affinity"], rel=1e-12)
