"""Business KPIs across all customers in event-time windows (pure; no clock).

The customers agent applies each event to the customer's session and profile with the
pure rules; ``contribution`` turns one *applied* event (the states before and after it)
into what it adds to the KPI row of the window its event time falls in. So the windowed
figures are sums of the same transitions the profiles count, and a pure fold of the
events (``fold_rows``, the tests' oracle) gives exactly what the workers store:

- ``events``: applied events (redeliveries and duplicates excluded);
- ``sessions``: sessions started (the profile's ``sessions`` counter grew);
- ``purchase_sessions``: sessions that got their first purchase;
- ``carts_opened``: a session's cart went from closed (empty, or already paid) to open
  (an emptied and refilled cart counts again);
- ``carts_abandoned``: a session was replaced while its cart was open and unpaid (the
  profile's ``abandoned_carts`` grew): counted at the event that started the next session;
- ``orders`` and ``revenue_cents`` per currency: distinct orders (an ``order_id`` counts
  once per customer) and their totals in integer cents, so sums are exact to the cent;
- ``active``: a HyperLogLog sketch of the customers with an applied event
  (``app.rules.hll``).

Every contribution of an event goes to the window of *that event's* time (an abandoned
cart too), so one applied event touches exactly one row per window size: the agent's
exactly-once bookkeeping relies on it (``agents/kpis.py``). Rows are JSON dicts; a row
of one partition and one window is the sum of its events' contributions, in any order.
"""
from __future__ import annotations

from typing import Iterable, Optional

from app.rules import hll
from app.rules.session_state import has_open_cart

MINUTE_MS = 60 * 1000
DAY_MS = 24 * 3600 * 1000
#: Window name -> (size in ms, windows kept per partition: 48 h of minutes, 90 days).
WINDOWS = {"1m": (MINUTE_MS, 48 * 60), "1d": (DAY_MS, 90)}
COUNTS = ("events", "sessions", "purchase_sessions", "carts_opened", "carts_abandoned")


def empty_row() -> dict:
    return {**{name: 0 for name in COUNTS}, "orders": {}, "revenue_cents": {}, "active": {}}


def window_start(ts: int, size_ms: int) -> int:
    """Start (ms) of the tumbling window of ``size_ms`` holding event time ``ts``."""
    return ts - ts % size_ms


#: The only events that change a session's cart or orders (``session_state``).
CART_TYPES = frozenset(("cart_add", "cart_remove", "purchase"))


def _opened(before: Optional[dict], after: Optional[dict], kind: str) -> bool:
    if after is None or after is before:
        return False
    if kind not in CART_TYPES and before is not None and (
            before["session_id"] == after["session_id"]):
        return False  # same session, cart untouched (a shortcut: ~half the events' cost)
    if not has_open_cart(after):
        return False
    return not (before is not None and before["session_id"] == after["session_id"]
                and has_open_cart(before))


def contribution(session_before: Optional[dict], session_after: Optional[dict],
                 profile_before: Optional[dict], profile_after: dict, event: dict) -> dict:
    """What one applied (not duplicate) shop event adds to its window's row."""
    def grew(field: str) -> int:
        return profile_after[field] - (profile_before[field] if profile_before else 0)

    delta = {"events": 1, "sessions": grew("sessions"),
             "purchase_sessions": grew("purchase_sessions"),
             "carts_opened": int(_opened(session_before, session_after, event["type"])),
             "carts_abandoned": grew("abandoned_carts"),
             "active": hll.register(event["customer_id"])}
    if event["type"] == "purchase" and grew("orders"):
        delta["order"] = (event["currency"], round(event["total"] * 100))
    return delta


def add(row: dict, delta: dict) -> dict:
    """``row`` plus one contribution (a new dict; ``row`` is not changed)."""
    return add_all(row, (delta,))


def add_all(row: dict, deltas: Iterable[dict]) -> dict:
    """``row`` plus several contributions: one copy of the row, whatever their number."""
    new = dict(row)
    orders = new["orders"] = dict(row["orders"])
    revenue = new["revenue_cents"] = dict(row["revenue_cents"])
    active = new["active"] = dict(row["active"])
    for delta in deltas:
        for name in COUNTS:
            if delta.get(name):
                new[name] += delta[name]
        order = delta.get("order")
        if order:
            currency, cents = order
            orders[currency] = orders.get(currency, 0) + 1
            revenue[currency] = revenue.get(currency, 0) + cents
        index, rank = delta["active"]
        if rank > active.get(index, 0):
            active[index] = rank
    return new


def merge(rows: Iterable[dict]) -> dict:
    """The sum of rows (of partitions, or of windows): counts add, sketches take maxima."""
    total = empty_row()
    orders, revenue, active = total["orders"], total["revenue_cents"], total["active"]
    for row in rows:
        for name in COUNTS:
            total[name] += row[name]
        for currency, n in row["orders"].items():
            orders[currency] = orders.get(currency, 0) + n
        for currency, cents in row["revenue_cents"].items():
            revenue[currency] = revenue.get(currency, 0) + cents
        hll.merge(active, row["active"])
    return total


#: A window starting more than this after the clock (the caller's ``horizon``) is no
#: partition's reference for expiry: one event dated years ahead must not expire history.
FUTURE_SLACK_MS = DAY_MS


def expired(start_ms: int, newest_start_ms: Optional[int], window: str) -> bool:
    """A partition keeps a window while a window at most ``keep`` - 1 sizes newer is its
    newest (``reference``): event time, not the clock."""
    size_ms, keep = WINDOWS[window]
    return newest_start_ms is not None and start_ms <= newest_start_ms - keep * size_ms


def reference(newest: Optional[int], start_ms: int, horizon_ms: Optional[int]) -> Optional[int]:
    """``newest`` updated with a window start, ignoring starts after ``horizon_ms`` (the
    caller's clock plus ``FUTURE_SLACK_MS``; None: no horizon)."""
    if horizon_ms is not None and start_ms > horizon_ms:
        return newest
    return start_ms if newest is None or start_ms > newest else newest


def _rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def summary(row: dict) -> dict:
    """The public KPI figures of a (merged) row."""
    currencies = {}
    for currency in sorted(row["orders"]):
        n, cents = row["orders"][currency], row["revenue_cents"].get(currency, 0)
        currencies[currency] = {"orders": n, "revenue": cents / 100, "revenue_cents": cents,
                                "average_order_value": round(cents / n / 100, 2)}
    return {
        "events": row["events"],
        "sessions": row["sessions"],
        "sessions_with_purchase": row["purchase_sessions"],
        "conversion_rate": _rate(row["purchase_sessions"], row["sessions"]),
        "carts_opened": row["carts_opened"],
        "carts_abandoned": row["carts_abandoned"],
        "abandonment_rate": _rate(row["carts_abandoned"], row["carts_opened"]),
        "orders": sum(row["orders"].values()),
        "revenue": currencies,
        "active_customers": hll.estimate(row["active"]),
    }


def fold_rows(applied: Iterable[tuple], window: str, horizon_ms: Optional[int] = None) -> dict:
    """The oracle: ``{(partition, window start): row}`` from ``(partition, ts, delta)`` of
    every applied event, expired windows dropped as the workers drop them."""
    size_ms = WINDOWS[window][0]
    rows: dict = {}
    for partition, ts, delta in applied:
        key = (partition, window_start(ts, size_ms))
        rows[key] = add(rows.get(key) or empty_row(), delta)
    newest: dict = {}
    for partition, start in rows:
        newest[partition] = reference(newest.get(partition), start, horizon_ms)
    return {key: row for key, row in rows.items()
            if not expired(key[1], newest[key[0]], window)}
