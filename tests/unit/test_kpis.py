"""Per-customer KPIs (``app.rules.kpis``): examples, and properties with hypothesis: the same
set of events gives the same KPIs in any arrival order, redeliveries change nothing, and
engagement equals the recomputation from the sorted event times."""
from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from app.rules import kpis
from app.rules import profile_state as ps
from tests.support.builders import IDLE, T0, ev
from tests.unit.test_properties import SETTINGS, fold, streams

MIN = 60 * 1000
DAY = kpis.DAY_MS


def reference_engagement(times, idle=IDLE) -> int:
    """Sum over runs of the sorted event times split at gaps > idle of (last - first)."""
    times = sorted(set(times))
    total, start = 0, None
    for prev, t in zip([None] + times, times, strict=False):
        if prev is None or t - prev > idle:
            if prev is not None:
                total += prev - start
            start = t
    return total + (times[-1] - start if times else 0)


def buy(ts, order_id, total=10.0, currency="EUR"):
    return ev("purchase", ts, order_id=order_id, total=total, currency=currency,
              items=[{"product_id": "p1", "quantity": 1, "price": total}])


def view_at(ts):
    return ev("product_view", ts, product_id="p1", price=1.0)


def test_examples():
    events = [view_at(T0), view_at(T0 + 10 * MIN),  # first visit: 10 min
              view_at(T0 + 2 * DAY), buy(T0 + 2 * DAY + 5 * MIN, "o1"),  # second visit: 5 min
              buy(T0 + 30 * DAY, "o2", 5.0, "USD"), buy(T0 + 92 * DAY, "o3", 2.5)]
    got = ps.view(fold(events)[1])["kpis"]
    assert got == {"engagement_time_s": 900.0,
                   "purchase_frequency_30d": round(3 * 30 / (90 - 5 / 1440), 4),
                   "recency_days": 0.0, "lifetime_value": {"EUR": 12.5, "USD": 5.0}}
    later = ps.view(fold(events + [view_at(T0 + 102 * DAY)])[1])["kpis"]
    assert later["recency_days"] == 10.0 and later["engagement_time_s"] == 900.0


def test_no_purchase_and_one_purchase():
    assert ps.view(fold([view_at(T0)])[1])["kpis"] == {
        "engagement_time_s": 0.0, "purchase_frequency_30d": 0.0, "recency_days": None,
        "lifetime_value": {}}
    one = ps.view(fold([buy(T0, "o1")])[1])["kpis"]
    assert one["purchase_frequency_30d"] == 1.0 and one["recency_days"] == 0.0


def test_a_profile_stored_before_the_kpis_still_answers_and_counts_on():
    _, profile = fold([view_at(T0), buy(T0 + MIN, "o1")])
    old = {k: v for k, v in profile.items()
           if k not in ("activity", "engagement_closed_ms", "first_purchase_at")}
    assert ps.view(old)["kpis"]["engagement_time_s"] == 0.0
    assert ps.view(old)["kpis"]["purchase_frequency_30d"] == 0.0
    _, later = fold([view_at(T0 + 3 * MIN)], profile=old)
    assert ps.view(later)["kpis"]["engagement_time_s"] == 0.0  # its first span starts here


@SETTINGS
@given(events=streams(), data=st.data())
def test_kpis_are_order_independent_and_engagement_is_the_recomputation(events, data):
    _, reference = fold(events)
    want = ps.view(reference)["kpis"]
    assert want["engagement_time_s"] * 1000 == reference_engagement([e["ts"] for e in events])
    for _ in range(3):
        perm = data.draw(st.permutations(events), label="permutation")
        assert ps.view(fold(perm)[1])["kpis"] == want
    unique = {e["event_id"]: e for e in events}
    buys = [e for e in unique.values() if e["type"] == "purchase"]
    assert reference["first_purchase_at"] == (min(e["ts"] for e in buys) if buys else None)


@SETTINGS
@given(events=streams())
def test_redelivered_events_change_no_kpi(events):
    _, once = fold(events)
    _, twice = fold(events + [copy.deepcopy(e) for e in reversed(events)])
    assert ps.view(twice)["kpis"] == ps.view(once)["kpis"]


@given(st.lists(st.integers(0, 200), max_size=60), st.integers(0, 12), st.randoms())
def test_activity_spans_are_the_runs_of_the_event_times(steps, idle_steps, rnd):
    unit = 5 * MIN
    times, idle = [T0 + s * unit for s in steps], idle_steps * unit
    rnd.shuffle(times)
    spans, closed = [], 0
    for t in times:
        spans, closed = kpis.add_activity(spans, closed, t, idle)
    assert closed == 0  # at most 60 events: fewer spans than MAX_SPANS, nothing folded
    assert kpis.engagement_ms(spans, closed) == reference_engagement(times, idle)
    assert spans == sorted(spans) and all(s <= e for s, e in spans)
    assert all(b[0] - a[1] > idle for a, b in zip(spans, spans[1:], strict=False))


def test_spans_are_bounded_and_in_order_folding_is_exact():
    times = [T0 + i * 2 * IDLE + j * MIN for i in range(kpis.MAX_SPANS + 10) for j in (0, 1)]
    spans, closed = [], 0
    for t in times:
        spans, closed = kpis.add_activity(spans, closed, t, IDLE)
    assert len(spans) == kpis.MAX_SPANS and closed == 10 * MIN
    assert kpis.engagement_ms(spans, closed) == reference_engagement(times) == len(times) // 2 * MIN
