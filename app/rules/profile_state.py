"""Profile: everything known about a customer. Pure rules,
``apply_to_profile(profile, event, session) -> profile`` where ``session`` is the customer's
session after the same event (from ``session_state.apply_to_session``).

- Idempotent: a bounded list of recent event ids makes a redelivery a no-op, and an
  ``order_id`` is counted once however many events carry it.
- Counters (per type, orders, spend, payment methods) are sums: order independent.
- Category affinity decays with a half-life: each category keeps a score at a
  reference time; adding an event at time t adds ``weight * 2 ** ((t - ref) / half_life)``,
  which gives the same result in any arrival order. The reference is the newest event's
  time rounded down to a whole number of half-lives since the epoch (``affinity_grid``), so it
  moves, and every score is rescaled, about once per half-life of a customer's activity
  instead of on every event; ``affinities`` decays the scores to the newest event for
  the answer. It is a function of the newest event's time alone: order independent.
- "Latest" values (last purchase, last payment choice) carry [ts, event_id]; an
  older event never overwrites a newer one.
- KPIs (engagement time, purchase frequency, recency, lifetime value): ``app.rules.kpis``;
  the first purchase time is a minimum, the activity spans a function of the event times.
"""
from __future__ import annotations

from typing import Optional

from app.rules import dedupe, kpis, session_state
from app.rules.session_state import newer, stamp

MAX_IDS = 256
MAX_VIEWS = 20
MAX_ORDER_IDS = 200
MAX_PRODUCTS = 500
HALF_LIFE_MS = 14 * 24 * 3600 * 1000
AFFINITY_WEIGHTS = {"product_view": 1.0, "cart_add": 3.0, "purchase": 5.0}
DEFAULT_IDLE_MS = 1800 * 1000  # SESSION_IDLE_S default; the agent passes the setting


def new_profile(event: dict) -> dict:
    return {
        "customer_id": event["customer_id"],
        "first_seen": event["ts"],
        "last_seen": event["ts"],
        "counts": {},
        "sessions": 0,
        "purchase_sessions": 0,
        "abandoned_carts": 0,
        "session": None,
        "affinity": {},
        "affinity_ref": affinity_grid(event["ts"]),
        "views": [],
        "products": {},
        "order_ids": [],
        "orders": 0,
        "spent": {},
        "last_purchase": None,
        "payments": {},
        "last_payment": None,
        dedupe.KEY: dedupe.EMPTY,
        "activity": [],
        "engagement_closed_ms": 0,
        "first_purchase_at": None,
    }


def affinity_grid(ts: int) -> int:
    return ts - ts % HALF_LIFE_MS


def _rescaled(scores: dict, ref: int, to: int) -> dict:
    """``scores`` held at time ``ref``, decayed (or grown) to time ``to``: a new dict."""
    factor = 2.0 ** ((ref - to) / HALF_LIFE_MS)
    return {c: s * factor for c, s in scores.items()}


def _rebase(profile: dict, ts: int) -> tuple[dict, int]:
    """A new dict of the scores at the reference for an event at ``ts``: the grid point at
    or before the newest event seen. Only a new grid point rescales the scores (and a
    reference written before the grid, once)."""
    ref = profile["affinity_ref"]
    new_ref = affinity_grid(max(ref, ts))
    if new_ref == ref:
        return dict(profile["affinity"]), ref
    return _rescaled(profile["affinity"], ref, new_ref), new_ref


def _affinity(profile: dict, categories: list, weight: float, ts: int) -> tuple[dict, int]:
    """Scores at the reference, then ``weight`` (scaled from ``ts`` to the reference)
    added to each of its ``categories``: one new dict per event, not one per category."""
    scores, ref = _rebase(profile, ts)
    if categories:
        added = weight * 2.0 ** ((ts - ref) / HALF_LIFE_MS)
        for category in categories:
            scores[category] = scores.get(category, 0.0) + added
    return scores, ref


def _categories(event: dict) -> list:
    if event["type"] == "purchase":
        return [i["category"] for i in event["items"] if i.get("category")]
    return [event["category"]] if event.get("category") else []


def _track_session(profile: dict, session: dict) -> dict:
    prev = profile["session"]
    purchased = session_state.has_purchase(session)
    changes = {"session": {"id": session["session_id"], "purchased": purchased,
                           "open_cart": session_state.has_open_cart(session)}}
    if prev is None or prev["id"] != session["session_id"]:
        changes["sessions"] = profile["sessions"] + 1
        if prev is not None and prev["open_cart"]:
            changes["abandoned_carts"] = profile["abandoned_carts"] + 1
        prev_purchased = False
    else:
        prev_purchased = prev["purchased"]
    if purchased and not prev_purchased:
        changes["purchase_sessions"] = profile["purchase_sessions"] + 1
    return changes


def _purchase(profile: dict, event: dict) -> dict:
    if event["order_id"] in profile["order_ids"]:
        return {}
    spent = dict(profile["spent"])
    cur = spent.get(event["currency"], {"total": 0.0, "orders": 0})
    spent[event["currency"]] = {"total": round(cur["total"] + event["total"], 2),
                                "orders": cur["orders"] + 1}
    products = dict(profile["products"])
    for item in event["items"]:
        products[item["product_id"]] = products.get(item["product_id"], 0) + item["quantity"]
    if len(products) > MAX_PRODUCTS:
        products = dict(sorted(products.items(), key=lambda kv: -kv[1])[:MAX_PRODUCTS])
    changes = {
        "order_ids": (profile["order_ids"] + [event["order_id"]])[-MAX_ORDER_IDS:],
        "orders": profile["orders"] + 1,
        "spent": spent,
        "products": products,
    }
    if newer(event, profile["last_purchase"]):
        changes["last_purchase"] = {"order_id": event["order_id"], "total": event["total"],
                                    "currency": event["currency"], "at": stamp(event)}
    return changes


def _payment_method(event: dict) -> Optional[str]:
    if event["type"] == "payment_preference":
        return event["method"]
    if event["type"] in ("checkout_start", "purchase"):
        return event.get("payment_method")
    return None


def apply_to_profile(profile: Optional[dict], event: dict, session: dict,
                     idle_ms: int = DEFAULT_IDLE_MS) -> dict:
    if profile is not None and dedupe.seen(profile, event["event_id"]):
        return profile
    base = profile if profile is not None else new_profile(event)
    new = dict(base)
    kind = event["type"]
    new["counts"] = {**base["counts"], kind: base["counts"].get(kind, 0) + 1}
    new["first_seen"] = min(base["first_seen"], event["ts"])
    new["last_seen"] = max(base["last_seen"], event["ts"])
    dedupe.remember(new, base, event["event_id"], MAX_IDS)
    new.update(_track_session(base, session))
    new["activity"], new["engagement_closed_ms"] = kpis.add_activity(
        base.get("activity") or [], base.get("engagement_closed_ms", 0), event["ts"], idle_ms)
    # Another event for an order already counted adds no affinity and no payment use.
    repeat_order = kind == "purchase" and event["order_id"] in base["order_ids"]
    # Every event may move the reference (to a later grid point), with or without a
    # category: the reference depends on the newest event alone, so order independent.
    new["affinity"], new["affinity_ref"] = _affinity(
        base, [] if repeat_order else _categories(event), AFFINITY_WEIGHTS.get(kind, 0.0),
        event["ts"])
    if kind == "product_view":
        view = {k: event.get(k) for k in ("product_id", "category", "price", "ts", "event_id")}
        new["views"] = session_state.bounded_by_ts(base["views"], view, MAX_VIEWS)
    elif kind == "purchase":
        new.update(_purchase(base, event))
        first = base.get("first_purchase_at")
        new["first_purchase_at"] = event["ts"] if first is None else min(first, event["ts"])
    method = None if repeat_order else _payment_method(event)
    if method:
        new["payments"] = {**base["payments"], method: base["payments"].get(method, 0) + 1}
        if newer(event, base["last_payment"]):
            new["last_payment"] = {"method": method, "at": stamp(event)}
    return new


def preferred_payment(profile: dict) -> Optional[str]:
    """Most used method; ties go to the most recently chosen one."""
    if not profile["payments"]:
        return None
    latest = profile["last_payment"]["method"] if profile["last_payment"] else None
    return max(profile["payments"], key=lambda m: (profile["payments"][m], m == latest, m))


def affinity_scores(profile: dict) -> dict:
    """Each category's score decayed to the newest event (``last_seen``)."""
    return _rescaled(profile["affinity"], profile["affinity_ref"], profile["last_seen"])


def affinities(profile: dict) -> list:
    """Categories by score (decayed to the newest event), with each one's share."""
    scores = affinity_scores(profile)
    total = sum(scores.values()) or 1.0
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"category": c, "score": round(s, 4), "share": round(s / total, 4)}
            for c, s in ranked]


def view(profile: dict) -> dict:
    """The public JSON answer for ``GET /v1/customers/{id}/profile``."""
    spent = profile["spent"]
    primary = max(spent, key=lambda c: (spent[c]["orders"], c)) if spent else None
    total = spent[primary]["total"] if primary else 0.0
    return {
        "customer_id": profile["customer_id"],
        "first_seen": profile["first_seen"],
        "last_seen": profile["last_seen"],
        "event_counts": profile["counts"],
        "sessions": profile["sessions"],
        "sessions_with_purchase": profile["purchase_sessions"],
        "conversion_rate": round(profile["purchase_sessions"] / profile["sessions"], 4)
        if profile["sessions"] else 0.0,
        "abandoned_carts": profile["abandoned_carts"],
        "category_affinities": affinities(profile),
        "recent_views": [{k: v[k] for k in ("product_id", "category", "price", "ts")}
                         for v in profile["views"]],
        "purchased_products": profile["products"],
        "orders": profile["orders"],
        "currency": primary,
        "total_spent": total,
        "average_order_value": round(total / spent[primary]["orders"], 2) if primary else 0.0,
        "spent_by_currency": spent,
        "last_purchase": profile["last_purchase"],
        "preferred_payment_method": preferred_payment(profile),
        "payment_methods": profile["payments"],
        "kpis": kpis.view(profile),
        "as_of": profile["last_seen"],
    }
