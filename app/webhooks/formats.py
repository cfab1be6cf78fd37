"""Record formats of the webhook topics: outbox requests, POST bodies, DLQ entries.

Outbox: one delivery request per (trigger, matching subscription), key = customer_id, with
``webhook-id`` = uuid5(event_id, subscription, kind): a redelivered event carries the same id,
and ``source`` = ``[partition, offset]`` of the ``events`` record that created it (what an
erase marker is compared with, ``app.webhooks.erasure``).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Optional

import orjson

from app.rules.triggers import ID_NAMESPACE


def webhook_id(event_id: str, subscription_id: str, kind: str) -> str:
    return "msg_" + uuid.uuid5(ID_NAMESPACE, f"{event_id}|{subscription_id}|{kind}").hex


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def delivery_requests(subs, event: dict, fired: list, now_ms: int, source: list) -> list:
    """``[(key, value)]`` for the outbox: one per (trigger, subscription that wants it)."""
    out = []
    for kind, data in fired:
        for sub in subs:
            if kind in sub.events:
                out.append((event["customer_id"].encode(), orjson.dumps({
                    "webhook_id": webhook_id(event["event_id"], sub.id, kind),
                    "subscription_id": sub.id, "kind": kind,
                    "customer_id": event["customer_id"], "event_id": event["event_id"],
                    "event_ts": event["ts"], "created_at": now_ms, "source": source,
                    "attempts": 0, "data": data})))
    return out


def body(record: dict) -> bytes:
    """The POST body: same bytes for every attempt of one delivery request."""
    return orjson.dumps({"type": record["kind"], "timestamp": iso(record["event_ts"]),
                         "data": record["data"]})


def dlq_entry(record: dict, error: str, status: Optional[int], attempts: int, now_ms: int) -> bytes:
    return orjson.dumps({"delivery": record, "subscription_id": record.get("subscription_id"),
                         "webhook_id": record.get("webhook_id"), "kind": record.get("kind"),
                         "customer_id": record.get("customer_id"), "error": error,
                         "status": status, "attempts": attempts, "failed_at": now_ms})


def redriven(entry: dict, now_ms: int) -> dict:
    """The delivery request inside a DLQ entry, ready to send again: attempts reset."""
    record = {k: v for k, v in entry["delivery"].items() if k != "not_before"}
    return {**record, "attempts": 0, "redriven_at": now_ms}
