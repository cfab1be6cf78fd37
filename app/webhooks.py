"""Webhooks, pure logic (the agents and app/redrive.py do the I/O). See README, "Webhooks".

- Subscriptions: ``PERSONA_WEBHOOKS`` (JSON list) or ``PERSONA_WEBHOOKS_FILE``; a bad value
  raises ``WebhookConfigError`` naming the entry and the field.
- Triggers: ``triggers`` decides from (old/new session, old/new profile, event) which kinds
  fire; ``on_session_timeout`` decides the abandoned-cart command.
- Outbox: one delivery request per (trigger, matching subscription), key = customer_id, with
  ``webhook-id`` = uuid5(event_id, subscription, kind): a redelivery carries the same id.
- Signing (Standard Webhooks): ``v1,`` + base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``;
  a ``whsec_`` secret is base64-decoded, any other secret is used as its utf-8 bytes.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlparse

import orjson

from app import profile_state, session_state
from app.events import CURRENT_VERSION, SESSION_TIMEOUT
from app.settings import settings

PURCHASE, CART_UPDATED, CART_ABANDONED = "purchase.completed", "cart.updated", "cart.abandoned"
KINDS = (PURCHASE, CART_UPDATED, CART_ABANDONED)
DEFAULT_TIMEOUT_S = 10.0
ID_NAMESPACE = uuid.UUID("0b4f9c52-3f0e-4d7e-a9f2-2a1f0c6d7e51")
SUB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: outcome of one HTTP attempt
OK, RETRY, GIVE_UP = "ok", "retry", "give_up"


class WebhookConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    secret: str
    events: frozenset
    timeout_s: float = DEFAULT_TIMEOUT_S


def _subscription(item, where: str) -> Subscription:
    def fail(msg: str):
        raise WebhookConfigError(f"{where}: {msg}")
    if not isinstance(item, dict):
        fail("must be a JSON object")
    unknown = sorted(set(item) - {"id", "url", "secret", "events", "timeout_s"})
    if unknown:
        fail(f"unknown field(s) {unknown}")
    if not isinstance(item.get("id"), str) or not SUB_ID.match(item["id"]):
        fail("'id' must be 1-64 of A-Z a-z 0-9 . _ -")
    for field in ("url", "secret"):
        if not isinstance(item.get(field), str) or not item[field].strip():
            fail(f"'{field}' must be a non-empty string")
    url = urlparse(item["url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        fail(f"'url' must be an http(s) URL, got {item['url']!r}")
    try:
        secret_bytes(item["secret"])
    except ValueError:
        fail("'secret' starts with whsec_ but the rest is not base64")
    events = item.get("events")
    if not isinstance(events, list) or not events or not all(e in KINDS for e in events):
        fail(f"'events' must be a non-empty list of {list(KINDS)}, got {events!r}")
    timeout = item.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        fail("'timeout_s' must be a number of seconds in (0, 300]")
    return Subscription(item["id"], item["url"], item["secret"], frozenset(events), float(timeout))


def parse_subscriptions(raw: str, source: str = "PERSONA_WEBHOOKS") -> tuple:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookConfigError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise WebhookConfigError(f"{source}: must be a JSON list of subscriptions")
    subs = tuple(_subscription(item, f"{source}[{i}]") for i, item in enumerate(data))
    ids = [s.id for s in subs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise WebhookConfigError(f"{source}: duplicate subscription id(s) {dupes}")
    return subs


def load_subscriptions(inline: str, path: str) -> tuple:
    if inline.strip() and path.strip():
        raise WebhookConfigError("set PERSONA_WEBHOOKS or PERSONA_WEBHOOKS_FILE, not both")
    if path.strip():
        try:
            with open(path, encoding="utf-8") as f:
                return parse_subscriptions(f.read(), f"PERSONA_WEBHOOKS_FILE {path}")
        except OSError as exc:
            raise WebhookConfigError(f"PERSONA_WEBHOOKS_FILE: cannot read {path}: {exc}") from None
    return parse_subscriptions(inline) if inline.strip() else ()


@functools.lru_cache(maxsize=1)
def configured() -> tuple:
    """The subscriptions of this process's settings (parsed once)."""
    return load_subscriptions(settings.webhooks, settings.webhooks_file)


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, body: bytes, now: Optional[int] = None) -> dict:
    ts = int(time.time()) if now is None else now
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, msg_id, ts, body),
            "content-type": "application/json", "user-agent": "persona-webhooks/1"}


def webhook_id(event_id: str, subscription_id: str, kind: str) -> str:
    return "msg_" + uuid.uuid5(ID_NAMESPACE, f"{event_id}|{subscription_id}|{kind}").hex


def backoff_delay(attempt: int, base: float, cap: float, rand=random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2 ** (attempt - 1))] after ``attempt`` failures."""
    return rand() * min(cap, base * 2.0 ** max(0, attempt - 1))


def classify(status: Optional[int]) -> str:
    """``None`` = no HTTP answer (connection error, timeout): retried."""
    if status is None or status in (408, 429) or status >= 500:
        return RETRY
    return OK if 200 <= status < 300 else GIVE_UP  # 410, other 4xx, redirects: for good


def retry_after_s(value: Optional[str], cap: float) -> Optional[float]:
    """``Retry-After`` in seconds (HTTP dates are not honoured), capped."""
    try:
        return min(cap, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _cart_key(session: Optional[dict]) -> dict:
    lines = session_state.cart_lines(session) if session else {}
    return {pid: (line["quantity"], line["price"]) for pid, line in lines.items()}


def _cart(session: dict) -> dict:
    v = session_state.view(session)
    return {"customer_id": v["customer_id"], "session_id": v["session_id"], "cart": v["cart"],
            "cart_value": v["cart_value"]}


def _abandoned(session: dict, reason: str) -> dict:
    return {**_cart(session), "started_at": session["started_at"],
            "last_event_at": session["last_event_at"], "reason": reason}


def abandonable(session: Optional[dict]) -> bool:
    return (session is not None and session_state.has_open_cart(session)
            and not session.get("abandon_notified"))


def triggers(old_s: Optional[dict], new_s: Optional[dict], old_p: Optional[dict],
             new_p: Optional[dict], event: dict, idle_ms: int) -> list:
    """``[(kind, data)]`` that one applied shop event fires (none for a duplicate)."""
    fired = []
    replaced = old_s is not None and session_state.belongs_to_new_session(old_s, event, idle_ms)
    if replaced and abandonable(old_s):
        fired.append((CART_ABANDONED, _abandoned(old_s, "new_session")))
    if new_s is not None and new_s is not old_s:
        if _cart_key(new_s) != _cart_key(None if replaced else old_s):
            fired.append((CART_UPDATED, _cart(new_s)))
    if (event["type"] == "purchase" and new_p is not None and new_p is not old_p
            and event["order_id"] not in (old_p or {}).get("order_ids", ())):
        p = profile_state.view(new_p)
        order = {k: event.get(k) for k in ("order_id", "items", "total", "currency",
                                           "payment_method", "ts")}
        totals = {k: p[k] for k in ("orders", "total_spent", "currency", "average_order_value",
                                    "spent_by_currency")}
        fired.append((PURCHASE, {"customer_id": event["customer_id"], "order": order,
                                 "profile": totals}))
    return fired


def idle(session: Optional[dict], now_ms: int, idle_ms: int) -> bool:
    return session is not None and now_ms - session["last_event_at"] > idle_ms


def timeout_command(session: dict, now_ms: int) -> dict:
    """The command the abandoned-cart scan puts on ``events`` (deterministic event_id)."""
    seed = f"{session['customer_id']}|{session['session_id']}|{session['last_event_at']}"
    return {"event_id": "timeout-" + uuid.uuid5(ID_NAMESPACE, seed).hex,
            "type": SESSION_TIMEOUT, "customer_id": session["customer_id"],
            "session_id": session["session_id"], "ts": now_ms, "v": CURRENT_VERSION}


def mark_notified(session: dict) -> dict:
    return {**session, "abandon_notified": True}


def on_session_timeout(session: Optional[dict], command: dict, idle_ms: int) -> tuple:
    """``(session, fired)``: the session (marked notified) and the cart.abandoned trigger if it
    is still idle at the command's time with an open cart not yet notified; else unchanged."""
    if not (abandonable(session) and idle(session, command["ts"], idle_ms)):
        return session, []
    return mark_notified(session), [(CART_ABANDONED, _abandoned(session, "idle"))]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def delivery_requests(subs, event: dict, fired: list, now_ms: int) -> list:
    """``[(key, value)]`` for the outbox: one per (trigger, subscription that wants it)."""
    out = []
    for kind, data in fired:
        for sub in subs:
            if kind in sub.events:
                out.append((event["customer_id"].encode(), orjson.dumps({
                    "webhook_id": webhook_id(event["event_id"], sub.id, kind),
                    "subscription_id": sub.id, "kind": kind,
                    "customer_id": event["customer_id"], "event_id": event["event_id"],
                    "event_ts": event["ts"], "created_at": now_ms, "attempts": 0,
                    "data": data})))
    return out


def erase_marker(customer_id: str, now_ms: int) -> tuple:
    return customer_id.encode(), orjson.dumps({"type": "erase", "customer_id": customer_id,
                                               "erased_at": now_ms})


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
