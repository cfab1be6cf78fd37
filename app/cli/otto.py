"""Convert the real OTTO shopper sample into Persona event envelopes (JSONL).

Mapping (see app/sample_data/README.md, which also carries the data's CC-BY 4.0 attribution): session -> customer_id ``otto-<session>``,
clicks -> product_view, carts -> cart_add, orders -> purchase (orders with the same
timestamp form one purchase). The sample has no prices, categories, order ids or
currencies: those are derived deterministically from the product id and listed in
each event's ``generated`` field (kept in the raw event, ignored by the rules).
"""
from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import orjson

# The sample ships inside the package, so a fresh clone (or an installed wheel) has it.
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "otto-sessions-sample.jsonl"
NAMESPACE = uuid.UUID("0f0e7b8c-6a53-4c5e-8d0b-7c1d2a3b4c5d")
CATEGORIES = ("fashion", "shoes", "home", "garden", "electronics", "toys", "sports", "beauty")


def price(aid: int) -> float:
    return round(5 + (aid * 2654435761 % 19500) / 100, 2)


def category(aid: int) -> str:
    return CATEGORIES[(aid * 40503) % len(CATEGORIES)]


def _event_id(session: int, index: int, raw: dict) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{session}:{index}:{raw['aid']}:{raw['ts']}:{raw['type']}"))


def convert_shopper(record: dict) -> Iterator[dict]:
    session = record["session"]
    cid = f"otto-{session}"
    indexed = list(enumerate(record["events"]))
    i = 0
    while i < len(indexed):
        index, raw = indexed[i]
        base = {"event_id": _event_id(session, index, raw), "customer_id": cid,
                "ts": raw["ts"], "v": 1}
        aid = raw["aid"]
        if raw["type"] == "clicks":
            yield {**base, "type": "product_view", "product_id": str(aid),
                   "category": category(aid), "price": price(aid),
                   "generated": ["category", "price"]}
        elif raw["type"] == "carts":
            yield {**base, "type": "cart_add", "product_id": str(aid), "quantity": 1,
                   "category": category(aid), "price": price(aid),
                   "generated": ["category", "price"]}
        elif raw["type"] == "orders":
            group = [raw]
            while (i + len(group) < len(indexed)
                   and indexed[i + len(group)][1]["type"] == "orders"
                   and indexed[i + len(group)][1]["ts"] == raw["ts"]):
                group.append(indexed[i + len(group)][1])
            items = [{"product_id": str(e["aid"]), "quantity": 1, "price": price(e["aid"]),
                      "category": category(e["aid"])} for e in group]
            yield {**base, "type": "purchase", "order_id": f"otto-{session}-{raw['ts']}",
                   "items": items, "total": round(sum(it["price"] for it in items), 2),
                   "currency": "EUR",
                   "generated": ["order_id", "items.price", "items.category", "total", "currency"]}
            i += len(group)
            continue
        i += 1


def convert(lines: Iterable[str]) -> Iterator[dict]:
    for line in lines:
        if line.strip():
            yield from convert_shopper(orjson.loads(line))


def load_sample(path: Path = SAMPLE) -> list[dict]:
    with open(path) as f:
        return list(convert(f))


def main() -> None:
    parser = argparse.ArgumentParser(description="OTTO sample -> Persona events (JSONL)")
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--output", type=Path, default=None, help="default: stdout")
    args = parser.parse_args()
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    with open(args.input) as f:
        for event in convert(f):
            out.write(orjson.dumps(event) + b"\n")
    out.flush()


if __name__ == "__main__":  # pragma: no cover
    main()
