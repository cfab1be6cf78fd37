"""The common case of event validation without marshmallow: same answer, ~5x cheaper.

Marshmallow's generic field machinery was a quarter of the worker's CPU per event (py-spy of ``make bench``). Almost every event on the topic is well formed, and for those the
schema's answer is easy to compute directly. ``check(data)`` does that for the plain shapes
(strings, ints, JSON numbers, the id rule, ``ts`` in epoch milliseconds or ISO-8601) and returns the
same dict, in the same key order, that ``events.validate_dict`` builds from the schemas; for
anything else (an ISO ``ts``, a wrong type, a missing field, a value out of range, a type
it does not know) it returns ``None`` and the caller runs the schemas, which give the
reason and the field errors. So it can only ever say "valid, and here is the answer the
schemas would give"; ``tests/unit/test_fastcheck.py`` pins that with hypothesis against the
schemas (valid and broken events alike), and that the bench generator's and the OTTO
sample's events all take this path.

Keep it in step with ``events.py``'s schemas: a field added there and not here makes every
event of that type take the slow path (the property test fails on the output), never a
wrong answer. Pure: no Faust, no settings, no clock.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

BAD = object()  # "not the plain case": the caller falls back to the schemas
MISSING = object()
_ID = re.compile(r"^(?!\.+$)[A-Za-z0-9._:@\-]{1,128}$")  # events.ID_RE, matched in full
_CURRENCY = re.compile(r"^[A-Z]{3}$")
TS_MAX = 32503680000000  # year 3000, events.Timestamp


def _id(v: Any) -> Any:
    return v if type(v) is str and len(v) <= 128 and _ID.fullmatch(v) else BAD


def _text(hi: int) -> Callable[[Any], Any]:
    return lambda v: v if type(v) is str and 1 <= len(v) <= hi else BAD


def _money(v: Any) -> Any:
    if type(v) is float:
        return v if 0.0 <= v <= 1e9 else BAD  # NaN fails both comparisons
    if type(v) is int:
        return float(v) if 0 <= v <= 1e9 else BAD
    return BAD


def _int(lo: int, hi: float) -> Callable[[Any], Any]:
    return lambda v: v if type(v) is int and lo <= v <= hi else BAD


def _ts(v: Any) -> Any:
    if type(v) is str:  # the same computation as events.Timestamp
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return BAD
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        v = int(dt.timestamp() * 1000)
    return v if type(v) is int and 0 <= v < TS_MAX else BAD


def _currency(v: Any) -> Any:
    return v if type(v) is str and _CURRENCY.fullmatch(v) else BAD


# (name, check, required, allow_none, default): the schemas' fields in declaration order.
Spec = tuple[tuple[str, Callable[[Any], Any], bool, bool, Any], ...]
_T128, _T64 = _text(128), _text(64)
_QTY = _int(1, 10_000)
ITEM: Spec = (("product_id", _id, True, False, MISSING), ("quantity", _QTY, True, False, MISSING),
              ("price", _money, True, False, MISSING), ("category", _T128, False, True, MISSING))
_CART: Spec = (("product_id", _id, True, False, MISSING), ("quantity", _QTY, False, False, 1),
               ("price", _money, False, True, MISSING), ("category", _T128, False, True, MISSING))


def _items(v: Any) -> Any:
    if type(v) is not list or not 1 <= len(v) <= 500:
        return BAD
    out = []
    for item in v:
        got = _load(item, ITEM) if type(item) is dict else BAD
        if got is BAD:
            return BAD
        out.append(got)
    return out


BODIES: dict[str, Spec] = {
    "product_view": (("product_id", _id, True, False, MISSING),
                     ("category", _T128, False, True, MISSING),
                     ("price", _money, False, True, MISSING)),
    "search": (("query", _text(512), True, False, MISSING),
               ("results_count", _int(0, 2**63 - 1), False, True, MISSING)),
    "cart_add": _CART,
    "cart_remove": _CART,
    "checkout_start": (("cart_value", _money, False, True, MISSING),
                       ("payment_method", _T64, False, True, MISSING)),
    "payment_preference": (("method", _T64, True, False, MISSING),),
    "purchase": (("order_id", _id, True, False, MISSING), ("items", _items, True, False, MISSING),
                 ("total", _money, True, False, MISSING), ("currency", _currency, True, False, MISSING),
                 ("payment_method", _T64, False, True, MISSING)),
}
ENVELOPE: Spec = (("event_id", _T128, False, False, MISSING),
                  ("type", lambda v: v if type(v) is str and v in BODIES else BAD, True, False, MISSING),
                  ("customer_id", _id, True, False, MISSING),
                  ("session_id", _id, False, True, MISSING),
                  ("ts", _ts, True, False, MISSING),
                  ("v", _int(1, 1), False, False, 1))


def _load(data: dict, spec: Spec) -> Any:
    out: dict = {}
    for name, check, required, allow_none, default in spec:
        v = data.get(name, MISSING)
        if v is MISSING:
            if required:
                return BAD
            if default is not MISSING:
                out[name] = default
            continue
        if v is None:
            if not allow_none:
                return BAD
            out[name] = None
            continue
        got = check(v)
        if got is BAD:
            return BAD
        out[name] = got
    return out


def check(data: dict) -> dict | None:
    """The validated event (without a derived ``event_id``), or None: ask the schemas."""
    env = _load(data, ENVELOPE)
    if env is BAD:
        return None
    body = _load(data, BODIES[env["type"]])
    if body is BAD:
        return None
    body.update(env)
    return body
