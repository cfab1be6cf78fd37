"""Webhook subscriptions: parse and validate ``PERSONA_WEBHOOKS`` / ``PERSONA_WEBHOOKS_FILE``.

Called once, by ``app.settings.load``; a bad value raises ``WebhookConfigError`` naming the
variable, the entry and the field, so the worker refuses to start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

import orjson

from app.rules.triggers import KINDS
from app.webhooks.signing import secret_bytes

DEFAULT_TIMEOUT_S = 10.0
SUB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class WebhookConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    secret: str
    events: frozenset
    timeout_s: float = DEFAULT_TIMEOUT_S


#: A shorter HMAC key is guessable offline from one signed delivery; Standard Webhooks'
#: own secrets are 24-64 random bytes.
MIN_SECRET_BYTES = 16


def url_problem(raw: str) -> str | None:
    """What is wrong with a delivery URL (None if nothing): parsed in full at start, so a
    typo stops the worker instead of sending every delivery to webhooks-dlq."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in raw):
        return "must not contain whitespace or control characters"
    url = urlparse(raw)
    if url.scheme not in ("http", "https") or not url.netloc:
        return "must be an http(s) URL"
    if not url.hostname:
        return "must name a host"
    try:
        port = url.port
    except ValueError:
        return "must have a numeric port 1-65535"
    if port is not None and not 1 <= port <= 65535:
        return "must have a numeric port 1-65535"
    if url.netloc.endswith(":"):
        return "must have a numeric port 1-65535"
    return None


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
    problem = url_problem(item["url"])
    if problem:
        fail(f"'url' {problem}, got {item['url']!r}")
    try:
        key = secret_bytes(item["secret"])
    except ValueError:
        fail("'secret' starts with whsec_ but the rest is not base64")
    if len(key) < MIN_SECRET_BYTES:
        fail(f"'secret' must be at least {MIN_SECRET_BYTES} bytes (HMAC-SHA256 key; "
             f"got {len(key)}): e.g. whsec_ + base64 of 24 random bytes")
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

