"""Event builders shared by the pure rule tests."""
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
