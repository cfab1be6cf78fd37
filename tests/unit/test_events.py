"""Pure tests of app.rules.events: parsing, validation, upcasting, generated event ids."""
from __future__ import annotations

import uuid

import orjson
import pytest

from app.rules import events
from app.rules.events import CURRENT_VERSION, InvalidEvent, parse, validate_dict

TS = 1_700_000_000_000
EID = "11111111-2222-3333-4444-555555555555"
_DROP = object()  # marks a field to leave out

VALID = {
    "product_view": {"product_id": "p-1", "category": "shoes", "price": 19.99},
    "search": {"query": "red shoes", "results_count": 12},
    "cart_add": {"product_id": "p-1", "quantity": 2, "price": 19.99, "category": "shoes"},
    "cart_remove": {"product_id": "p-1", "quantity": 1},
    "checkout_start": {"cart_value": 39.98, "payment_method": "card"},
    "payment_preference": {"method": "paypal"},
    "purchase": {
        "order_id": "o-1",
        "items": [{"product_id": "p-1", "quantity": 2, "price": 19.99, "category": "shoes"}],
        "total": 39.98,
        "currency": "EUR",
        "payment_method": "card",
    },
}


def ev(kind: str, **over) -> dict:
    data = {"event_id": EID, "type": kind, "customer_id": "cust-1", "session_id": "s-1",
            "ts": TS, "v": 1, **VALID[kind]}
    data.update(over)
    return {k: v for k, v in data.items() if v is not _DROP}



def raw(data: dict) -> bytes:
    return orjson.dumps(data)


def reason_of(data, **kw) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        validate_dict(data, **kw)
    return info.value


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_type_valid_example_round_trips(kind):
    out = parse(raw(ev(kind)))
    assert out["type"] == kind
    assert out["event_id"] == EID
    assert out["customer_id"] == "cust-1"
    assert out["session_id"] == "s-1"
    assert out["ts"] == TS
    assert out["v"] == CURRENT_VERSION
    for field, value in VALID[kind].items():
        assert out[field] == value


def test_all_shop_types_are_covered_by_examples():
    assert set(VALID) == set(events.SHOP_TYPES)


def test_defaults_filled_in():
    data = ev("cart_add", quantity=_DROP, session_id=_DROP, v=_DROP)
    out = validate_dict(data)
    assert out["quantity"] == 1
    assert out["session_id"] is None
    assert out["v"] == CURRENT_VERSION


def test_malformed_json():
    with pytest.raises(InvalidEvent) as info:
        parse(b'{"type": "search", ')
    assert info.value.reason == "malformed JSON"
    assert "_schema" in info.value.errors


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_not_an_object(payload):
    with pytest.raises(InvalidEvent) as info:
        parse(payload)
    assert info.value.reason == "event is not a JSON object"


def test_unknown_type():
    err = reason_of(ev("search", type="teleport"))
    assert err.reason == "invalid envelope"
    assert "type" in err.errors


@pytest.mark.parametrize("field", ["type", "customer_id", "ts"])
def test_missing_envelope_field(field):
    err = reason_of(ev("product_view", **{field: _DROP}))
    assert err.reason == "invalid envelope"
    assert field in err.errors


@pytest.mark.parametrize("kind,field", [
    ("product_view", "product_id"), ("search", "query"), ("cart_add", "product_id"),
    ("payment_preference", "method"), ("purchase", "order_id"), ("purchase", "items"),
    ("purchase", "total"), ("purchase", "currency"),
])
def test_missing_type_field(kind, field):
    err = reason_of(ev(kind, **{field: _DROP}))
    assert err.reason == f"invalid {kind} event"
    assert field in err.errors


def test_missing_item_field_reported_nested():
    items = [{"product_id": "p-1", "quantity": 1}]  # no price
    err = reason_of(ev("purchase", items=items))
    assert err.reason == "invalid purchase event"
    assert "price" in err.errors["items"][0]


@pytest.mark.parametrize("kind,field,value", [
    ("cart_add", "quantity", "2"),
    ("cart_add", "quantity", 2.5),
    ("cart_add", "quantity", 0),
    ("cart_remove", "quantity", 10_001),
    ("search", "results_count", "3"),
    ("search", "results_count", -1),
    ("product_view", "price", -1),
    ("product_view", "price", True),
    ("purchase", "currency", "eur"),
    ("purchase", "items", []),
    ("purchase", "total", "lots"),
])
def test_wrong_types_and_ranges(kind, field, value):
    err = reason_of(ev(kind, **{field: value}))
    assert err.reason == f"invalid {kind} event"
    assert field in err.errors


def test_item_quantity_is_strict_int():
    items = [{"product_id": "p-1", "quantity": "2", "price": 1.0}]
    err = reason_of(ev("purchase", items=items))
    assert "quantity" in err.errors["items"][0]


@pytest.mark.parametrize("value,expected", [
    (TS, TS),
    (float(TS) + 0.7, TS),
    ("2024-01-01T00:00:00Z", 1_704_067_200_000),
    ("2024-01-01T00:00:00+00:00", 1_704_067_200_000),
    ("2024-01-01T02:00:00+02:00", 1_704_067_200_000),
    ("2024-01-01T00:00:00", 1_704_067_200_000),  # naive = UTC
    ("2024-01-01T00:00:00.250Z", 1_704_067_200_250),
])
def test_timestamps_iso_and_epoch_ms(value, expected):
    assert validate_dict(ev("search", ts=value))["ts"] == expected


@pytest.mark.parametrize("value", ["yesterday", "", True, None, [TS], -1, 32503680000000])
def test_bad_timestamps(value):
    err = reason_of(ev("search", ts=value))
    assert err.reason == "invalid envelope"
    assert "ts" in err.errors


@pytest.mark.parametrize("cid", ["", "has space", "semi;colon", "slash/x", "ü", "x" * 129])
def test_bad_customer_id(cid):
    err = reason_of(ev("search", customer_id=cid))
    assert err.reason == "invalid envelope"
    assert "customer_id" in err.errors


@pytest.mark.parametrize("cid", ["a", "A.b_c-d:e@f", "x" * 128])
def test_good_customer_id(cid):
    assert validate_dict(ev("search", customer_id=cid))["customer_id"] == cid


def test_bad_product_id_characters():
    err = reason_of(ev("product_view", product_id="p 1"))
    assert "product_id" in err.errors


def test_newer_version_is_unsupported():
    err = reason_of(ev("search", v=CURRENT_VERSION + 1))
    assert err.reason == "unsupported version"
    assert "v" in err.errors


def test_older_version_without_upcaster_is_unsupported():
    err = reason_of(ev("search", v=CURRENT_VERSION - 1))
    assert err.reason == "unsupported version"


@pytest.mark.parametrize("v", ["1", 1.0, True])
def test_version_must_be_int(v):
    err = reason_of(ev("search", v=v))
    assert err.reason == "invalid envelope"
    assert "v" in err.errors


def test_upcaster_is_applied(monkeypatch):
    def rename(data):
        data = dict(data)
        data["query"] = data.pop("q")
        return data

    monkeypatch.setitem(events.UPCASTERS, CURRENT_VERSION - 1, rename)
    old = ev("search", query=_DROP, v=CURRENT_VERSION - 1, q="boots")
    out = validate_dict(old)
    assert out["query"] == "boots"
    assert out["v"] == CURRENT_VERSION
    assert "q" in old and "query" not in old  # input untouched


def test_missing_event_id_is_deterministic_uuid5_of_raw_bytes():
    data = raw(ev("product_view", event_id=_DROP))
    first, second = parse(data), parse(data)
    assert first["event_id"] == second["event_id"]
    expected = uuid.uuid5(events.ID_NAMESPACE, data.decode())
    assert first["event_id"] == str(expected)
    other = parse(raw(ev("product_view", event_id=_DROP, ts=TS + 1)))
    assert other["event_id"] != first["event_id"]


def test_missing_event_id_without_raw_is_stable_across_key_order():
    a = ev("search", event_id=_DROP)
    b = dict(reversed(list(a.items())))
    assert validate_dict(a)["event_id"] == validate_dict(b)["event_id"]
    assert uuid.UUID(validate_dict(a)["event_id"]).version == 5


def test_unknown_extra_fields_ignored():
    out = parse(raw(ev("cart_add", generated=["price"], color="red")))
    assert "generated" not in out and "color" not in out
    assert out["product_id"] == "p-1"


def test_input_dict_not_mutated():
    data = ev("purchase", event_id=_DROP)
    before = orjson.dumps(data)
    validate_dict(data)
    assert orjson.dumps(data) == before


def test_erase_command_validates():
    cmd = events.erase_command("cust-1", TS)
    out = validate_dict(cmd)
    assert out["type"] == events.ERASE
    assert out["customer_id"] == "cust-1"
    assert events.erase_command("cust-1", TS)["event_id"] != cmd["event_id"]
