"""Windowed business KPIs (``app.rules.window_kpis``): examples, and properties with
hypothesis over random streams of several customers: the totals equal the profiles'
counters, redeliveries add nothing, the order-independent figures do not depend on arrival
order, and rows split over partitions merge to the rows of one."""
from __future__ import annotations

import copy
import random

from hypothesis import given
from hypothesis import strategies as st

from app.rules import hll
from app.rules import window_kpis as wk
from tests.support.builders import T0, ev
from tests.support.expected import fold, kpi_applied
from tests.unit.test_properties import SETTINGS, one_event

MIN = wk.MINUTE_MS
IDLE = 30 * MIN


def buy(ts, order_id, total, currency="EUR", **kw):
    return ev("purchase", ts, order_id=order_id, total=total, currency=currency,
              items=[{"product_id": "p1", "quantity": 1, "price": total}], **kw)


def totals(events, window="1d", partition_of=lambda cid: 0):
    rows = wk.fold_rows(kpi_applied(events, partition_of, IDLE), window)
    return wk.summary(wk.merge(rows.values()))


def test_a_day_of_one_customer():
    events = [ev("product_view", T0, product_id="p1"),
              ev("cart_add", T0 + MIN, product_id="p1", price=19.99),        # cart opened
              buy(T0 + 2 * MIN, "o1", 19.99),                                  # converted
              ev("cart_add", T0 + 3 * MIN, product_id="p2", price=5.0),       # paid: not open
              ev("cart_add", T0 + 2 * IDLE, product_id="p3", price=0.1),      # second visit, open
              ev("product_view", T0 + 4 * IDLE, product_id="p1"),             # third visit: abandoned
              buy(T0 + 4 * IDLE + MIN, "o2", 0.1, "USD"),
              buy(T0 + 4 * IDLE + MIN, "o2", 0.1, "USD", event_id="again"),  # same order
              ]
    got = totals(events + [copy.deepcopy(events[2])])  # a redelivery adds nothing
    assert got == {
        "events": 8, "sessions": 3, "sessions_with_purchase": 2, "conversion_rate": 0.6667,
        "carts_opened": 2, "carts_abandoned": 1, "abandonment_rate": 0.5, "orders": 2,
        "revenue": {"EUR": {"orders": 1, "revenue": 19.99, "revenue_cents": 1999,
                            "average_order_value": 19.99},
                    "USD": {"orders": 1, "revenue": 0.1, "revenue_cents": 10,
                            "average_order_value": 0.1}},
        "active_customers": 1}
    minutes = wk.fold_rows(kpi_applied(events, idle_ms=IDLE), "1m")
    assert sorted(start for _, start in minutes) == sorted(
        {wk.window_start(e["ts"], MIN) for e in events})
    assert sum(r["events"] for r in minutes.values()) == 8


def test_empty_rates_are_null_and_money_is_exact_cents():
    assert wk.summary(wk.empty_row())["conversion_rate"] is None
    events = [buy(T0 + i, f"o{i}", 0.1) for i in range(10)]  # 10 x 0.1 in floats is 0.999...
    assert totals(events)["revenue"]["EUR"] == {"orders": 10, "revenue": 1.0,
                                                "revenue_cents": 100,
                                                "average_order_value": 0.1}


def test_expiry_is_relative_to_the_partition_newest_window():
    assert not wk.expired(T0, T0, "1m")
    assert not wk.expired(T0 - 2879 * MIN, T0, "1m")
    assert wk.expired(T0 - 2880 * MIN, T0, "1m")
    assert wk.expired(T0 - 90 * wk.DAY_MS, T0, "1d")
    events = [ev("product_view", T0 - 3 * wk.DAY_MS, product_id="p1", customer_id="a"),
              ev("product_view", T0, product_id="p1")]
    rows = wk.fold_rows(kpi_applied(events, idle_ms=IDLE), "1m")
    assert list(rows) == [(0, wk.window_start(T0, MIN))]
    # partitions expire apart: an old window of another partition stays
    both = wk.fold_rows(kpi_applied(events, lambda cid: 1 if cid == "a" else 0, IDLE), "1m")
    assert len(both) == 2


@st.composite
def shop(draw):
    """Events of up to 4 customers (ids, counters and order ids per customer), with
    exact redeliveries."""
    out = []
    for c in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 25))
        for i in range(n):
            e = draw(one_event(c * 100 + i))
            e["customer_id"] = f"cust-{c}"
            out.append(e)
    random.Random(draw(st.integers(0, 10**6))).shuffle(out)
    dups = draw(st.lists(st.integers(0, len(out) - 1), max_size=6))
    return out + [copy.deepcopy(out[i]) for i in dups]



@SETTINGS
@given(shop())
def test_totals_equal_the_profiles_counters(events):
    got = totals(events)
    profiles = [p for _, p in fold(events, IDLE).values()]
    assert got["events"] == len({(e["customer_id"], e["event_id"]) for e in events})
    assert got["sessions"] == sum(p["sessions"] for p in profiles)
    assert got["sessions_with_purchase"] == sum(p["purchase_sessions"] for p in profiles)
    assert got["carts_abandoned"] == sum(p["abandoned_carts"] for p in profiles)
    assert got["orders"] == sum(p["orders"] for p in profiles)
    for currency, figures in got["revenue"].items():
        assert figures["revenue"] == round(sum(p["spent"].get(currency, {"total": 0})["total"]
                                               for p in profiles), 2)
    assert got["carts_abandoned"] <= got["carts_opened"]
    assert got["active_customers"] == len(profiles)


@SETTINGS
@given(shop(), st.randoms(use_true_random=False))
def test_order_independent_figures_and_redeliveries(events, rnd):
    """Events, orders, revenue and active customers per window do not depend on arrival
    order (sessions follow arrival order by design, as in the profiles); redelivered
    copies anywhere add nothing at all."""
    def independent(evts):
        rows = wk.fold_rows(kpi_applied(evts, idle_ms=IDLE), "1d")
        return {k: (r["events"], r["orders"], r["revenue_cents"], r["active"])
                for k, r in rows.items()}

    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert independent(shuffled) == independent(events)
    redelivered = events + [copy.deepcopy(e) for e in rnd.sample(events, min(5, len(events)))]
    assert (wk.fold_rows(kpi_applied(redelivered, idle_ms=IDLE), "1m")
            == wk.fold_rows(kpi_applied(events, idle_ms=IDLE), "1m"))


@SETTINGS
@given(shop(), st.integers(1, 8))
def test_partitions_merge_to_one(events, partitions):
    def part(cid):
        return int(cid.split("-")[1]) % partitions

    split = wk.fold_rows(kpi_applied(events, part, IDLE), "1d")
    whole = wk.fold_rows(kpi_applied(events, idle_ms=IDLE), "1d")
    per_start: dict = {}
    for (_, start), row in split.items():
        per_start.setdefault(start, []).append(row)
    assert {s: wk.merge(rows) for s, rows in per_start.items()} == {
        s: wk.merge([row]) for (_, s), row in whole.items()}


@SETTINGS
@given(st.lists(st.lists(st.text(min_size=1, max_size=8), max_size=30), max_size=4))
def test_add_all_equals_one_by_one_in_any_grouping(groups):
    deltas = [{"events": 1, "active": hll.register(c)} for g in groups for c in g]
    one_by_one = wk.empty_row()
    for d in deltas:
        one_by_one = wk.add(one_by_one, d)
    grouped = wk.empty_row()
    i = 0
    for g in groups:
        grouped = wk.add_all(grouped, deltas[i:i + len(g)])
        i += len(g)
    assert grouped == one_by_one == wk.merge([one_by_one])


def test_windows_past_the_horizon_are_no_expiry_reference():
    assert wk.reference(None, T0, None) == T0
    assert wk.reference(T0, T0 + 10**12, T0 + wk.DAY_MS) == T0  # past the horizon: ignored
    assert wk.reference(T0, T0 + MIN, T0 + wk.DAY_MS) == T0 + MIN
    assert not wk.expired(T0, None, "1m")
    far = [ev("product_view", T0, product_id="p1"),
           ev("product_view", T0 + 400 * wk.DAY_MS, product_id="p1")]
    rows = wk.fold_rows(kpi_applied(far, idle_ms=IDLE), "1d", horizon_ms=T0 + wk.DAY_MS)
    assert len(rows) == 2
    assert len(wk.fold_rows(kpi_applied(far, idle_ms=IDLE), "1d")) == 1
