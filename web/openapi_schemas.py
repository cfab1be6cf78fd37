"""JSON Schemas of the events, generated from the marshmallow schemas in ``app.rules.events``.

``web.openapi`` puts them into the OpenAPI document. Every marshmallow validator the events
use becomes the matching JSON Schema keyword (``Length`` -> ``minLength``/``maxLength`` or
``minItems``/``maxItems``, ``Range`` -> ``minimum``/``maximum``, ``Regexp`` -> ``pattern``,
``OneOf`` -> ``enum``), so what the document calls valid is what ingest accepts: schemathesis
(``tests/e2e/test_schemathesis.py``) sends data generated from these schemas and fails on
any 400 for it. Timestamps are documented narrower than they are parsed (see ``TS_STRING``).
"""
from __future__ import annotations

from marshmallow import fields, validate

from app.rules.events import ALIAS, ANON_PREFIX, CURRENT_VERSION, TYPE_SCHEMAS, Envelope, Timestamp

#: The largest ``ts`` ingest accepts (epoch milliseconds before the year 3000).
TS_MAX_MS = 32503680000000 - 1
#: The string form of ``ts`` as documented: RFC 3339 date-times of the years 1980-2899 (days
#: 1-28, so every match is a real date; offsets within a day): every such string parses and is
#: in range. Ingest also takes other ISO-8601 forms (``datetime.fromisoformat``) from 1970 on.
TS_STRING = (r"^(19[89][0-9]|2[0-8][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
             r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
             r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
TIMESTAMP = {"oneOf": [
    {"type": "string", "pattern": TS_STRING, "description": "RFC 3339 date-time"},
    {"type": "integer", "minimum": 0, "maximum": TS_MAX_MS,
     "description": "epoch milliseconds"}]}


def constraints(field, kind: str) -> dict:
    """The JSON Schema keywords of a field's marshmallow validators."""
    out: dict = {}
    validators = field.validators if isinstance(field.validators, list) else [field.validators]
    for v in validators:
        if isinstance(v, validate.Length):
            lo, hi = ("minItems", "maxItems") if kind == "array" else ("minLength", "maxLength")
            if v.min is not None:
                out[lo] = v.min
            if v.max is not None:
                out[hi] = v.max
        elif isinstance(v, validate.Range):
            if v.min is not None:
                out["minimum" if v.min_inclusive else "exclusiveMinimum"] = v.min
            if v.max is not None:
                out["maximum" if v.max_inclusive else "exclusiveMaximum"] = v.max
        elif isinstance(v, validate.Regexp):
            out["pattern"] = v.regex.pattern
        elif isinstance(v, validate.OneOf):
            out["enum"] = list(v.choices)
    return out


def field_schema(field) -> dict:
    if isinstance(field, Timestamp):
        return dict(TIMESTAMP)
    if isinstance(field, fields.Nested):
        return schema_of(field.schema)
    if isinstance(field, fields.List):
        out = {"type": "array", "items": field_schema(field.inner)}
        return {**out, **constraints(field, "array")}
    kind = {fields.Integer: "integer", fields.Float: "number", fields.Boolean: "boolean"}
    out = {"type": next((t for c, t in kind.items() if isinstance(field, c)), "string")}
    out.update(constraints(field, out["type"]))
    if field.allow_none:
        out["nullable"] = True
    return out


def schema_of(schema) -> dict:
    props = {name: field_schema(f) for name, f in schema.fields.items()}
    required = sorted(name for name, f in schema.fields.items() if f.required)
    return {"type": "object", "properties": props, **({"required": required} if required else {})}


def event_schema(event_type: str) -> dict:
    """One event type: the envelope (``type`` fixed, ``ts`` optional: the server fills it,
    ``v`` the supported version) and the type's own fields."""
    envelope = schema_of(Envelope())
    envelope["properties"]["type"] = {"type": "string", "enum": [event_type]}
    envelope["properties"]["v"] = {"type": "integer", "enum": [CURRENT_VERSION],
                                   "default": CURRENT_VERSION}
    envelope["required"] = [r for r in envelope["required"] if r != "ts"]  # server fills ts
    if event_type == ALIAS:  # the identified customer: not an anonymous id
        envelope["properties"]["customer_id"]["not"] = {"pattern": f"^{ANON_PREFIX}"}
    body = schema_of(TYPE_SCHEMAS[event_type])
    return {"allOf": [envelope, body], "additionalProperties": True}
