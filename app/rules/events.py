"""The event envelope and every event type: marshmallow schemas, parsing, upcasting.

``parse(raw_bytes)`` is the one door into the state rules: it returns a normalized
event dict (``ts`` in epoch milliseconds, defaults filled in) or raises
``InvalidEvent`` with a reason and per-field errors.
"""
from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.rules import fastcheck

CURRENT_VERSION = 1
#: The one id rule (customer, session, product and order ids); the web views and the
#: OpenAPI document use these too.
ID_MAX = 128
#: Matched in full (``re.fullmatch``: Python's ``$`` also matches before a final newline, so
#: ``"alice\n"`` would pass a plain match); not dots alone (``.`` and ``..`` read as paths).
#: The pattern is also valid ECMAScript, for the OpenAPI document.
ID_RE = r"^(?!\.+$)[A-Za-z0-9._:@\-]{1,128}$"
ID_HINT = "1-128 characters from A-Z a-z 0-9 . _ : @ -, not only dots"
_ID = re.compile(ID_RE)
ID_NAMESPACE = uuid.UUID("6f1c1e0e-2b7e-4f3b-9d6a-6e2f5b1f9a10")
SHOP_TYPES = (
    "product_view",
    "search",
    "cart_add",
    "cart_remove",
    "checkout_start",
    "payment_preference",
    "purchase",
)
#: Internal command, produced only by ``DELETE /v1/customers/{id}``.
ERASE = "erase"
#: Internal command, produced only by the abandoned-cart scan (agents/webhooks.py): "this
#: customer's session looked idle at ``ts``"; the customers agent re-checks and decides.
SESSION_TIMEOUT = "session_timeout"
#: Internal command, produced only by ``persona-reconcile --repair``: replace a customer's
#: state in the named tables if it is still what the tool saw (``app.rules.reconcile``).
RECONCILE = "reconcile"
#: Command types: accepted on the ``events`` topic, never from public HTTP ingest.
INTERNAL_TYPES = (ERASE, SESSION_TIMEOUT, RECONCILE)
#: The tables a reconcile command may name (the customers agent's two documents).
STATE_TABLES = ("sessions", "profiles")
#: Merge an anonymous id into an identified customer (``app.rules.alias``): from server keys
#: only. Its partition key is the *anonymous* id (``key_of``): the owner of the anonymous
#: state handles it and forwards that state's events to the identified customer.
ALIAS = "alias"
SERVER_TYPES = (ALIAS,)
#: Customer ids the browser SDK generates for visitors who are not signed in (``anon-<uuid>``):
#: they need no identity hash (``app.auth.identity``) and only they can be aliased.
ANON_PREFIX = "anon-"
ANON_ID_RE = r"^anon-[A-Za-z0-9._:@\-]{1,123}$"


class FullMatch(validate.Regexp):
    """``validate.Regexp`` that must match the whole value (marshmallow's uses ``match``)."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class InvalidEvent(ValueError):
    def __init__(self, reason: str, errors: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or {}


class Timestamp(fields.Field):
    """ISO-8601 string or epoch milliseconds -> int epoch milliseconds."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> int:
        if isinstance(value, bool):
            raise ValidationError("Not a timestamp.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("Not an ISO-8601 time or epoch milliseconds.")
        if isinstance(value, (int, float)):
            ms = int(value)
        elif isinstance(value, str):
            try:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValidationError("Not an ISO-8601 time or epoch milliseconds.") from exc
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            ms = int(dt.timestamp() * 1000)
        else:
            raise ValidationError("Not an ISO-8601 time or epoch milliseconds.")
        if not 0 <= ms < 32503680000000:  # year 3000
            raise ValidationError("Timestamp out of range.")
        return ms


def _id(required: bool = True, **kw) -> fields.String:
    return fields.String(
        required=required,
        validate=[validate.Length(1, ID_MAX), FullMatch(ID_RE, error="Invalid characters.")],
        **kw,
    )


_money = dict(validate=validate.Range(min=0, max=1e9))
_qty = dict(validate=validate.Range(min=1, max=10_000))


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


class Envelope(_Base):
    event_id = fields.String(validate=validate.Length(1, 128))
    type = fields.String(required=True,
                         validate=validate.OneOf(SHOP_TYPES + SERVER_TYPES + INTERNAL_TYPES))
    customer_id = _id()
    session_id = _id(required=False, allow_none=True)
    ts = Timestamp(required=True)
    v = fields.Integer(load_default=CURRENT_VERSION, strict=True)


class ProductView(_Base):
    product_id = _id()
    category = fields.String(validate=validate.Length(1, 128), allow_none=True)
    price = fields.Float(allow_none=True, **_money)


class Search(_Base):
    query = fields.String(required=True, validate=validate.Length(1, 512))
    # Bounded so that the document can say so: JSON numbers past 64 bits arrive as floats.
    results_count = fields.Integer(strict=True, allow_none=True,
                                   validate=validate.Range(min=0, max=2**63 - 1))


class CartChange(_Base):
    product_id = _id()
    quantity = fields.Integer(strict=True, load_default=1, **_qty)
    price = fields.Float(allow_none=True, **_money)
    category = fields.String(validate=validate.Length(1, 128), allow_none=True)


class CheckoutStart(_Base):
    cart_value = fields.Float(allow_none=True, **_money)
    payment_method = fields.String(validate=validate.Length(1, 64), allow_none=True)


class PaymentPreference(_Base):
    method = fields.String(required=True, validate=validate.Length(1, 64))


class Item(_Base):
    product_id = _id()
    quantity = fields.Integer(strict=True, required=True, **_qty)
    price = fields.Float(required=True, **_money)
    category = fields.String(validate=validate.Length(1, 128), allow_none=True)


class Purchase(_Base):
    order_id = _id()
    items = fields.List(fields.Nested(Item), required=True, validate=validate.Length(1, 500))
    total = fields.Float(required=True, **_money)
    currency = fields.String(required=True, validate=FullMatch(r"^[A-Z]{3}$"))
    payment_method = fields.String(validate=validate.Length(1, 64), allow_none=True)


class Alias(_Base):
    anonymous_id = fields.String(required=True, validate=[
        validate.Length(1, ID_MAX), FullMatch(ANON_ID_RE, error="Not an anonymous id "
                                                    f"({ANON_PREFIX}...).")])


class Erase(_Base):
    pass


class SessionTimeout(_Base):
    pass


class TableRepair(_Base):
    seen = fields.String(required=True, allow_none=True, validate=validate.Length(1, 128))
    state = fields.Dict(required=True, allow_none=True)


class Reconcile(_Base):
    tables = fields.Dict(keys=fields.String(validate=validate.OneOf(STATE_TABLES)),
                         values=fields.Nested(TableRepair), required=True,
                         validate=validate.Length(min=1))


TYPE_SCHEMAS: dict[str, Schema] = {
    "product_view": ProductView(),
    "search": Search(),
    "cart_add": CartChange(),
    "cart_remove": CartChange(),
    "checkout_start": CheckoutStart(),
    "payment_preference": PaymentPreference(),
    "purchase": Purchase(),
    ALIAS: Alias(),
    ERASE: Erase(),
    SESSION_TIMEOUT: SessionTimeout(),
    RECONCILE: Reconcile(),
}
_ENVELOPE = Envelope()

#: v -> function(raw dict) -> raw dict of version v+1. The one place where old
#: versions are upcast; a change that cannot be upcast gets a new ``v``.
UPCASTERS: dict[int, Callable[[dict], dict]] = {}


def upcast(data: dict) -> dict:
    v = data.get("v", CURRENT_VERSION)
    if not isinstance(v, int) or isinstance(v, bool):
        raise InvalidEvent("invalid envelope", {"v": ["Not a valid integer."]})
    while v < CURRENT_VERSION:
        step = UPCASTERS.get(v)
        if step is None:
            raise InvalidEvent("unsupported version", {"v": [f"Version {v} is not supported."]})
        data = step(data)
        v += 1
        data["v"] = v
    if v > CURRENT_VERSION:
        raise InvalidEvent("unsupported version", {"v": [f"Version {v} is newer than {CURRENT_VERSION}."]})
    return data


def validate_dict(data: Any, raw: bytes | None = None) -> dict:
    """Validate one decoded event; ``raw`` (original bytes) seeds a missing event_id."""
    if not isinstance(data, dict):
        raise InvalidEvent("event is not a JSON object", {"_schema": ["Expected a JSON object."]})
    data = upcast(dict(data))
    body = fastcheck.check(data)  # the plain case, same answer as the schemas; else None
    if body is None:
        body = _schemas(data)
    if "event_id" not in body:
        seed = raw if raw is not None else orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        body["event_id"] = str(uuid.uuid5(ID_NAMESPACE, seed.decode("utf-8", "replace")))
    body.setdefault("session_id", None)
    return body


def _schemas(data: dict) -> dict:
    """The marshmallow schemas' answer (envelope then type fields), or InvalidEvent."""
    try:
        env = _ENVELOPE.load(data)
    except ValidationError as exc:
        raise InvalidEvent("invalid envelope", exc.messages) from None
    try:
        body = TYPE_SCHEMAS[env["type"]].load(data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {env['type']} event", exc.messages) from None
    if env["type"] == ALIAS and env["customer_id"].startswith(ANON_PREFIX):
        raise InvalidEvent("invalid alias event", {"customer_id": [
            f"The identified customer cannot be an anonymous ({ANON_PREFIX}...) id."]})
    body.update(env)
    return body


def parse(raw: bytes) -> dict:
    """Decode and validate one event from the ``events`` topic."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("malformed JSON", {"_schema": [str(exc)]}) from None
    return validate_dict(data, raw)


def key_of(event: dict) -> str:
    """The event's partition key: its customer, but an alias goes to its anonymous id."""
    return event["anonymous_id"] if event["type"] == ALIAS else event["customer_id"]


def valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def erase_command(customer_id: str, ts_ms: int) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": ERASE,
        "customer_id": customer_id,
        "ts": ts_ms,
        "v": CURRENT_VERSION,
    }
