"""Event builders shared by the tests: pure rule tests (``ev``) and the metrics e2e tests
(``view_add_buy``)."""
from __future__ import annotations

import itertools

IDLE = 30 * 60 * 1000
T0 = 1_700_000_000_000
_n = itertools.count()


def ev(kind: str, ts: int = T0, **fields) -> dict:
    """A normalized event (as ``app.rules.events.validate_dict`` returns) for customer c1."""
    e = {"event_id": fields.pop("event_id", f"e{next(_n):05d}"), "type": kind,
         "customer_id": "c1", "session_id": fields.pop("session_id", None), "ts": ts, "v": 1}
    e.update(fields)
    return e


def view_add_buy(customers: list, buyer: str, t0: int = T0) -> list:
    """Raw events: a view and a cart add per customer, then one purchase by ``buyer``."""
    out = []
    for n, cid in enumerate(customers):
        out.append({"event_id": f"{cid}-v", "type": "product_view", "customer_id": cid,
                    "ts": t0 + n, "product_id": "p1", "category": "shoes", "price": 10.0})
        out.append({"event_id": f"{cid}-a", "type": "cart_add", "customer_id": cid,
                    "ts": t0 + 1000 + n, "product_id": "p1", "quantity": 1, "price": 10.0})
    out.append({"event_id": f"{buyer}-buy", "type": "purchase", "customer_id": buyer,
                "ts": t0 + 5000, "order_id": "o-1", "total": 10.0, "currency": "EUR",
                "items": [{"product_id": "p1", "quantity": 1, "price": 10.0}]})
    return out
