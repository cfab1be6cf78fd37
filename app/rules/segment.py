"""Segment-spec calls (HTTP Tracking API, E-commerce spec v2) -> Persona events. Pure.

``convert(call, server, received_ms, sent_at)`` takes one decoded call (``track``,
``identify``, ``page``, ``screen``, ``group`` or ``alias``) and answers a ``Converted``:

- ``stored``: the Persona events to produce (validated with ``app.rules.events``);
- ``unused``: a call Persona has no use for (a page, an e-commerce event it does not model,
  an identify that merges nothing): acknowledged and counted, not stored;
- ``invalid``: a call it would use whose fields are wrong: the reason and per-field errors,
  named as the caller sent them (``properties.order_id``, not ``order_id``), for events-dlq.

Ids: ``customer_id`` is ``userId`` when given, else the ``anonymousId`` as a Persona anonymous
id (``anon-<anonymousId>``). The event id is ``messageId`` when it fits Persona's event id
(1-128 characters), else a uuid5 of it; a call without one gets a uuid5 of its content, so a
resent call keeps its id. Time: ``timestamp`` corrected for the device's clock skew the way
Segment does it, ``receivedAt - (sentAt - timestamp)``; without ``sentAt`` the timestamp as
given, without a timestamp the receive time.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import orjson
from marshmallow import ValidationError

from app.rules.events import (
    ALIAS,
    ANON_PREFIX,
    ID_NAMESPACE,
    InvalidEvent,
    Timestamp,
    valid_id,
    validate_dict,
)

CALLS = ("track", "identify", "page", "screen", "group", "alias")
#: The one-letter paths analytics.js (analytics-next) posts each call to.
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group",
               "a": "alias"}
#: E-commerce spec v2 event name -> Persona event type.
TRACKED = {
    "Product Viewed": "product_view",
    "Products Searched": "search",
    "Product Added": "cart_add",
    "Product Removed": "cart_remove",
    "Checkout Started": "checkout_start",
    "Payment Info Entered": "payment_preference",
    "Order Completed": "purchase",
}
STORED, UNUSED, INVALID = "stored", "unused", "invalid"
#: Persona field -> the name the caller used, for the errors of an invalid call.
CALLER_NAMES = {
    "customer_id": "userId", "anonymous_id": "anonymousId", "event_id": "messageId",
    "ts": "timestamp", "product_id": "properties.product_id", "price": "properties.price",
    "quantity": "properties.quantity", "category": "properties.category",
    "query": "properties.query", "cart_value": "properties.value",
    "payment_method": "properties.payment_method", "method": "properties.payment_method",
    "order_id": "properties.order_id", "items": "properties.products",
    "total": "properties.total", "currency": "properties.currency",
}
_TIME = Timestamp()
#: Left out of the content a missing messageId is derived from: they change when a client
#: resends the same call.
_RESENT = ("sentAt", "writeKey", "receivedAt", "_metadata")


@dataclass(frozen=True)
class Converted:
    outcome: str
    events: tuple = ()
    reason: str = ""
    errors: dict = field(default_factory=dict)


def unused(reason: str) -> Converted:
    return Converted(UNUSED, reason=reason)


def invalid(reason: str, errors: dict) -> Converted:
    return Converted(INVALID, reason=reason, errors=errors)


def call_label(call) -> str:
    """The call's type when it is one of ``CALLS``, else ``other`` (a metric label)."""
    kind = call.get("type") if isinstance(call, dict) else None
    return kind if kind in CALLS else "other"


def millis(value, name: str) -> int:
    try:
        return _TIME.deserialize(value)
    except ValidationError as exc:
        raise InvalidEvent("invalid Segment timestamp", {name: exc.messages}) from None


def corrected_ts(call: dict, sent_at, received_ms: int) -> int:
    """Segment's clock-skew rule: ``receivedAt - (sentAt - timestamp)``."""
    stamp = call.get("timestamp")
    sent = call.get("sentAt", sent_at)
    if stamp is None:
        return received_ms
    original = millis(stamp, "timestamp")
    if sent is None:
        return original
    return received_ms - (millis(sent, "sentAt") - original)


def event_id(call: dict) -> str:
    mid = call.get("messageId")
    if isinstance(mid, int) and not isinstance(mid, bool):
        mid = str(mid)
    if isinstance(mid, str) and 1 <= len(mid) <= 128:
        return mid
    if isinstance(mid, str) and mid:
        return str(uuid.uuid5(ID_NAMESPACE, mid))
    content = {k: v for k, v in call.items() if k not in _RESENT}
    return str(uuid.uuid5(ID_NAMESPACE, orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
                          .decode()))


def text_id(value):
    """A Segment id as text: strings as they are, whole numbers written out, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def anonymous(value: str) -> str:
    """A Segment anonymous id as a Persona anonymous id: ``anon-`` + the id (kept when it
    already starts so); one that does not fit the id rule becomes ``anon-`` + a uuid5 of it
    (the same id every time)."""
    candidate = value if value.startswith(ANON_PREFIX) else ANON_PREFIX + value
    if valid_id(candidate):
        return candidate
    return ANON_PREFIX + str(uuid.uuid5(ID_NAMESPACE, value))


def customer_of(call: dict) -> str:
    user, anon = text_id(call.get("userId")), text_id(call.get("anonymousId"))
    if user is not None:
        return user  # the id rule is checked with the event (errors under userId)
    if anon is not None:
        return anonymous(anon)
    raise InvalidEvent("invalid Segment call", {"userId": ["Needs userId or anonymousId."]})


def kept(call: dict, received_ms: int) -> dict:
    """What of the call itself travels with the event on the topic (who, which, when)."""
    names = ("type", "event", "messageId", "userId", "anonymousId", "previousId",
             "timestamp", "sentAt")
    out = {k: call[k] for k in names if isinstance(call.get(k), (str, int, float))}
    out["receivedAt"] = received_ms
    return out


def _some(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _item(product) -> dict:
    if not isinstance(product, dict):
        return {"product_id": None}
    return _some(product_id=text_id(product.get("product_id")),
                 quantity=product.get("quantity", 1), price=product.get("price"),
                 category=product.get("category"))


def _first(props: dict, *names):
    return next((props[n] for n in names if props.get(n) is not None), None)


def fields_of(kind: str, props: dict) -> dict:
    """The Persona fields of a tracked e-commerce event, from its documented properties."""
    pid = text_id(props.get("product_id"))
    if kind == "product_view":
        return _some(product_id=pid, category=props.get("category"), price=props.get("price"))
    if kind == "search":
        return _some(query=props.get("query"))
    if kind in ("cart_add", "cart_remove"):
        return _some(product_id=pid, quantity=props.get("quantity", 1), price=props.get("price"),
                     category=props.get("category"))
    if kind == "checkout_start":
        return _some(cart_value=_first(props, "value", "revenue", "total"),
                     payment_method=props.get("payment_method"))
    if kind == "payment_preference":
        return _some(method=props.get("payment_method"))
    currency = props.get("currency")
    products = props.get("products")
    return _some(order_id=text_id(props.get("order_id")),
                 items=[_item(p) for p in products] if isinstance(products, list) else products,
                 total=_first(props, "total", "revenue"),
                 currency=currency.upper() if isinstance(currency, str) else currency,
                 payment_method=props.get("payment_method"))


def caller_names(errors: dict) -> dict:
    return {CALLER_NAMES.get(k, k): v for k, v in errors.items()}


def convert(call, server: bool, received_ms: int, sent_at=None) -> Converted:
    """One Segment call -> ``Converted`` (see the module docstring). ``server``: sent with a
    server credential (only those merge ids); ``sent_at``: the batch's ``sentAt``."""
    if not isinstance(call, dict):
        return invalid("invalid Segment call", {"_schema": ["Expected a JSON object."]})
    kind = call.get("type")
    if kind not in CALLS:
        return invalid("invalid Segment call", {"type": [f"Must be one of: {', '.join(CALLS)}."]})
    name = call.get("event") if kind == "track" else kind
    if kind == "track" and name not in TRACKED:
        return unused("not an e-commerce event Persona uses")
    if kind in ("page", "screen", "group"):
        return unused(f"{kind} calls are not stored")
    label = f"invalid Segment {name}" + (" call" if kind != "track" else "")
    try:
        base = {"event_id": event_id(call), "ts": corrected_ts(call, sent_at, received_ms),
                "segment": kept(call, received_ms)}
        if kind == "track":
            props = call.get("properties", {})
            if not isinstance(props, dict):
                return invalid(label, {"properties": ["Expected a JSON object."]})
            event = {"type": TRACKED[name], "customer_id": customer_of(call),
                     **fields_of(TRACKED[name], props), **base}
        elif kind == "identify":
            anon = text_id(call.get("anonymousId"))
            if not server:
                return unused("an identify from a publishable key merges nothing")
            if anon is None or text_id(call.get("userId")) is None:
                return unused("an identify without both userId and anonymousId merges nothing")
            event = {"type": ALIAS, "customer_id": customer_of(call),
                     "anonymous_id": anonymous(anon), **base}
        else:  # alias: previousId (the anonymous id) -> userId
            previous = text_id(call.get("previousId"))
            if previous is None or text_id(call.get("userId")) is None:
                return invalid(label, {"previousId": ["Needs previousId and userId."]})
            event = {"type": ALIAS, "customer_id": text_id(call.get("userId")),
                     "anonymous_id": anonymous(previous), **base}
        validate_dict(event)
    except InvalidEvent as exc:
        errors = caller_names(exc.errors)
        if kind == "alias" and "anonymousId" in errors:
            errors["previousId"] = errors.pop("anonymousId")
        return invalid(exc.reason if exc.reason.endswith("timestamp") else label, errors)
    return Converted(STORED, (event,))
