"""Per-customer KPIs kept in the profile: engagement time, purchase frequency, recency and
historical customer lifetime value. Pure: no clock; every figure is computed from event
times, so the profile answer stays a function of the events applied (and its ETag stable).

- **Engagement time**: the sum of session durations, where a session is a maximal run of
  the customer's events (in *event time*) with no gap longer than the idle time
  (``SESSION_IDLE_S``), lasting from its first to its last event (a single event: 0 s).
  The profile keeps these runs as sorted ``[start, end]`` spans (``add_activity``); the
  result depends only on the set of event times, not on arrival order (unlike the
  ``sessions`` counter, which follows arrival order and ``session_id``s). At most
  ``MAX_SPANS`` spans are kept: older ones are folded into a closed total, so an event
  older than every kept span by more than the idle time can no longer join its session
  (it counts as a 0 s session).
- **Purchase frequency**: distinct orders per 30 days, over the time from the first
  purchase to the customer's last event (at least one 30-day period).
- **Recency**: days from the last purchase to the customer's last event (``as_of``), not
  to the wall clock: a client that wants "days ago" uses ``last_purchase.at``.
- **Lifetime value**: historical, per currency: the sum of the distinct orders' totals.
"""
from __future__ import annotations

from typing import Optional

DAY_MS = 24 * 3600 * 1000
PERIOD_MS = 30 * DAY_MS
MAX_SPANS = 64


def add_activity(spans: list, closed_ms: int, ts: int, idle_ms: int) -> tuple[list, int]:
    """``spans`` (sorted, separated by gaps > ``idle_ms``) with the event time ``ts`` added:
    every span within ``idle_ms`` of ``ts`` merges with it. Returns (spans, closed_ms);
    ``spans`` is the same list when ``ts`` falls inside the last span."""
    if spans:
        start, end = spans[-1]
        if start <= ts <= end:
            return spans, closed_ms
        if ts > end:  # the common case: the newest event so far
            if ts - end <= idle_ms:
                return spans[:-1] + [[start, ts]], closed_ms
            return _bounded(spans + [[ts, ts]], closed_ms)
    start = end = ts
    kept = []
    for s, e in spans:
        if s - ts <= idle_ms and ts - e <= idle_ms:
            start, end = min(start, s), max(end, e)
        else:
            kept.append([s, e])
    return _bounded(sorted(kept + [[start, end]]), closed_ms)


def _bounded(spans: list, closed_ms: int) -> tuple[list, int]:
    if len(spans) > MAX_SPANS:
        folded = spans[:len(spans) - MAX_SPANS]
        closed_ms += sum(e - s for s, e in folded)
        spans = spans[len(folded):]
    return spans, closed_ms


def engagement_ms(spans: list, closed_ms: int) -> int:
    return closed_ms + sum(e - s for s, e in spans)


def purchase_frequency_30d(orders: int, first_purchase_at: Optional[int], as_of: int) -> float:
    if not orders or first_purchase_at is None:
        return 0.0
    return round(orders * PERIOD_MS / max(PERIOD_MS, as_of - first_purchase_at), 4)


def recency_days(last_purchase_at: Optional[int], as_of: int) -> Optional[float]:
    if last_purchase_at is None:
        return None
    return round(max(0, as_of - last_purchase_at) / DAY_MS, 4)


def lifetime_value(spent: dict) -> dict:
    return {currency: entry["total"] for currency, entry in sorted(spent.items())}


def view(profile: dict) -> dict:
    """The ``kpis`` object of the profile answer (profiles stored before these fields
    existed count engagement from their next event on)."""
    last = profile["last_purchase"]
    as_of = profile["last_seen"]
    return {
        "engagement_time_s": round(engagement_ms(profile.get("activity") or [],
                                                 profile.get("engagement_closed_ms", 0)) / 1000, 3),
        "purchase_frequency_30d": purchase_frequency_30d(
            profile["orders"], profile.get("first_purchase_at"), as_of),
        "recency_days": recency_days(last["at"][0] if last else None, as_of),
        "lifetime_value": lifetime_value(profile["spent"]),
    }
