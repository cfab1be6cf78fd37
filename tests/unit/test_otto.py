"""Tests of app.cli.otto against the real OTTO sample (bundled in app/sample_data)."""
from __future__ import annotations

import collections

import orjson
import pytest

from app.cli import otto
from app.rules.events import validate_dict


@pytest.fixture(scope="module")
def records() -> list:
    with open(otto.SAMPLE) as f:
        return [orjson.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def converted() -> list:
    return otto.load_sample()


def order_groups(record: dict) -> list:
    """Runs of consecutive order rows with the same timestamp, from the raw file."""
    groups, prev = [], None
    for e in record["events"]:
        if e["type"] == "orders" and prev is not None and prev["type"] == "orders" \
                and prev["ts"] == e["ts"]:
            groups[-1].append(e)
        elif e["type"] == "orders":
            groups.append([e])
        prev = e
    return groups


def test_sample_is_the_documented_one(records):
    kinds = collections.Counter(e["type"] for r in records for e in r["events"])
    assert kinds == {"clicks": 800, "carts": 52, "orders": 10}
    assert len(records) == 20


def test_type_mapping_counts(records, converted):
    kinds = collections.Counter(e["type"] for e in converted)
    groups = [g for r in records for g in order_groups(r)]
    assert kinds["product_view"] == 800
    assert kinds["cart_add"] == 52
    assert kinds["purchase"] == len(groups)
    assert 0 < len(groups) < 10  # the sample has multi-item orders
    assert sum(len(e["items"]) for e in converted if e["type"] == "purchase") == 10
    assert set(kinds) == {"product_view", "cart_add", "purchase"}
    assert len(converted) == 800 + 52 + len(groups)


def test_purchases_match_raw_order_groups(records, converted):
    for record in records:
        cid = f"otto-{record['session']}"
        purchases = [e for e in converted if e["customer_id"] == cid and e["type"] == "purchase"]
        groups = order_groups(record)
        assert len(purchases) == len(groups)
        for purchase, group in zip(purchases, groups, strict=True):
            assert purchase["ts"] == group[0]["ts"]
            assert [i["product_id"] for i in purchase["items"]] == [str(e["aid"]) for e in group]
            assert purchase["order_id"] == f"{cid}-{group[0]['ts']}"
            assert purchase["total"] == round(sum(i["price"] for i in purchase["items"]), 2)
            assert purchase["currency"] == "EUR"


def test_every_event_is_valid(converted):
    for raw in converted:
        event = validate_dict(raw, orjson.dumps(raw))
        assert event["event_id"] == raw["event_id"]
        assert event["ts"] == raw["ts"]
        assert event["customer_id"].startswith("otto-")
        assert "generated" not in event  # kept in the raw event, ignored by the rules


def test_event_ids_unique_and_stable(converted):
    ids = [e["event_id"] for e in converted]
    assert len(set(ids)) == len(ids)
    assert [e["event_id"] for e in otto.load_sample()] == ids
    assert otto.load_sample() == converted


def test_events_keep_per_shopper_order_and_product(records, converted):
    by_customer = collections.defaultdict(list)
    for e in converted:
        by_customer[e["customer_id"]].append(e)
    for record in records:
        events = by_customer[f"otto-{record['session']}"]
        assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
        raw_single = [e for e in record["events"] if e["type"] != "orders"]
        single = [e for e in events if e["type"] != "purchase"]
        assert [e["product_id"] for e in single] == [str(e["aid"]) for e in raw_single]


def test_generated_fields_listed(converted):
    for e in converted:
        if e["type"] == "purchase":
            assert e["generated"] == ["order_id", "items.price", "items.category", "total",
                                      "currency"]
        else:
            assert e["generated"] == ["category", "price"]
            assert e["category"] == otto.category(int(e["product_id"]))
            assert e["price"] == otto.price(int(e["product_id"]))


def test_derived_values_deterministic_and_in_range():
    for aid in (0, 1, 1517085, 12899779):
        assert 5.0 <= otto.price(aid) < 200.0
        assert otto.category(aid) in otto.CATEGORIES
        assert otto.price(aid) == otto.price(aid) and otto.category(aid) == otto.category(aid)
    assert len({otto.category(a) for a in range(100)}) > 1


def test_convert_groups_only_same_ts_orders():
    line = orjson.dumps({"session": 7, "events": [
        {"aid": 1, "ts": 1000, "type": "orders"}, {"aid": 2, "ts": 1000, "type": "orders"},
        {"aid": 3, "ts": 2000, "type": "orders"}, {"aid": 4, "ts": 2500, "type": "clicks"},
        {"aid": 5, "ts": 2500, "type": "orders"}]}).decode()
    out = list(otto.convert([line, "  \n"]))
    assert [(e["type"], e["ts"]) for e in out] == [
        ("purchase", 1000), ("purchase", 2000), ("product_view", 2500), ("purchase", 2500)]
    assert [i["product_id"] for i in out[0]["items"]] == ["1", "2"]


def test_main_writes_jsonl_to_stdout(capsysbinary, monkeypatch, converted):
    monkeypatch.setattr("sys.argv", ["persona-otto"])
    otto.main()
    lines = capsysbinary.readouterr().out.splitlines()
    assert [orjson.loads(line) for line in lines] == converted
