"""Deterministic, realistic shop traffic valid per ``app/rules/events.py``.

``generate(customers, events, seed)`` returns ``[(key, value), ...]`` (bytes) in
stream order (event time ascending). Customer activity is skewed (a few heavy
shoppers, a long tail); each customer walks a funnel with real state: searches and
views, cart adds of viewed products, removes of cart lines, checkouts, payment
choices and purchases of the cart's contents. About half the customers send a
browser ``session_id`` (a new one after 30 min idle); a quarter of the events carry
an ISO-8601 ``ts``; 0.5 % are exact redeliveries (at-least-once producers).
"""
from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from datetime import datetime, timezone

import orjson

CATEGORIES = ("fashion", "shoes", "home", "garden", "electronics", "toys", "sports", "beauty")
METHODS = ("card", "paypal", "klarna", "apple_pay", "invoice")
WORDS = ("red", "dress", "running", "shoes", "lamp", "sofa", "garden", "hose", "phone",
         "case", "lego", "yoga", "mat", "serum", "jacket", "kids", "oak", "table", "usb-c")
PRODUCTS = 5000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 40  # global clock step per event: ~7 min between a customer's events on average
IDLE_MS = 1800 * 1000
#: (event type, weight) of the next step of a customer's funnel.
MIX = (("product_view", 52), ("search", 14), ("cart_add", 13), ("cart_remove", 4),
       ("checkout_start", 6), ("payment_preference", 4), ("purchase", 7))


def _product(pid: int) -> dict:
    return {"product_id": f"p-{pid}", "category": CATEGORIES[(pid * 40503) % len(CATEGORIES)],
            "price": round(5 + (pid * 2654435761 % 19500) / 100, 2)}


_CATALOG = [_product(pid) for pid in range(PRODUCTS)]


def product(pid: int) -> dict:
    return dict(_CATALOG[pid])


class Shopper:
    __slots__ = ("cid", "browser", "session", "last_ts", "cart", "viewed", "orders")

    def __init__(self, cid: str, browser: bool):
        self.cid, self.browser = cid, browser
        self.session, self.last_ts, self.orders = 0, -IDLE_MS * 2, 0
        self.cart: dict[int, int] = {}
        self.viewed: list[int] = []


def _body(rng: random.Random, s: Shopper, kind: str) -> dict:
    if kind == "product_view":
        pid = rng.choice(s.viewed) if s.viewed and rng.random() < 0.3 else rng.randrange(PRODUCTS)
        s.viewed = (s.viewed + [pid])[-10:]
        return product(pid)
    if kind == "search":
        return {"query": " ".join(rng.sample(WORDS, rng.randint(1, 3))),
                "results_count": rng.randint(0, 500)}
    if kind == "cart_add":
        pid = rng.choice(s.viewed) if s.viewed else rng.randrange(PRODUCTS)
        qty = 1 if rng.random() < 0.8 else rng.randint(2, 4)
        s.cart[pid] = s.cart.get(pid, 0) + qty
        return {**product(pid), "quantity": qty}
    if kind == "cart_remove":
        pid = rng.choice(sorted(s.cart))
        qty = s.cart.pop(pid)
        return {**product(pid), "quantity": qty}
    value = round(sum(product(p)["price"] * q for p, q in s.cart.items()), 2)
    if kind == "checkout_start":
        return {"cart_value": value, "payment_method": rng.choice(METHODS)}
    if kind == "payment_preference":
        return {"method": rng.choice(METHODS)}
    # purchase: the cart's contents
    items = [{**product(p), "quantity": q} for p, q in sorted(s.cart.items())]
    s.cart, s.orders = {}, s.orders + 1
    return {"order_id": f"o-{s.cid}-{s.orders}", "items": items,
            "total": round(sum(i["price"] * i["quantity"] for i in items), 2),
            "currency": "EUR" if rng.random() < 0.9 else "USD",
            "payment_method": rng.choice(METHODS)}


def _next_kind(rng: random.Random, s: Shopper) -> str:
    while True:
        kind = rng.choices(_KINDS, cum_weights=_CUM)[0]
        if kind in ("cart_remove", "checkout_start", "purchase") and not s.cart:
            continue
        return kind


_KINDS = tuple(k for k, _ in MIX)
_CUM = tuple(itertools.accumulate(w for _, w in MIX))


def _ts_field(rng: random.Random, ts: int):
    if rng.random() < 0.25:
        return datetime.fromtimestamp(ts / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return ts


def generate(customers: int, events: int, seed: int = 7,
             start_ms: int = START_MS) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    shoppers = [Shopper(f"c-{i:06d}", rng.random() < 0.5) for i in range(customers)]
    # Skewed activity: Pareto weights (capped: no single hot key), heavy shoppers and a long tail.
    weights = [min(rng.paretovariate(1.5), 30.0) for _ in shoppers]
    picks = rng.choices(range(customers), weights, k=events)
    out: list[tuple[bytes, bytes]] = []
    for i, idx in enumerate(picks):
        if out and rng.random() < 0.005:
            out.append(rng.choice(out[-2000:]))  # a redelivery of a recent event
            continue
        s = shoppers[idx]
        ts = start_ms + i * STEP_MS
        if ts - s.last_ts > IDLE_MS:
            s.session += 1
        s.last_ts = ts
        kind = _next_kind(rng, s)
        event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                 "type": kind, "customer_id": s.cid, "ts": _ts_field(rng, ts), "v": 1}
        if s.browser:
            event["session_id"] = f"{s.cid}-s{s.session}"
        event.update(_body(rng, s, kind))
        key = s.cid.encode()
        out.append((key, orjson.dumps(event)))
    return out


def mix(records: list[tuple[bytes, bytes]]) -> dict:
    """Counts per event type (for the report)."""
    counts = Counter(orjson.loads(v)["type"] for _, v in records)
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
