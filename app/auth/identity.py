"""Browser identity: what a publishable (browser) key may send, and identity verification.

Pure: no faust, aiohttp or settings here; ``app.settings`` calls ``browser_config(env)`` at
start and ``web.ingest`` calls ``browser_refusal(...)`` for every request made with a
publishable key (an entry marked ``publishable`` in PERSONA_API_KEYS, or any key sent as
``?key=``). README.md, "Browser identity", has the threat model.

- **Type policy.** A publishable key may send only PERSONA_PUBLISHABLE_TYPES (default: every
  shop type but ``purchase``), never ``alias`` (merging an anonymous id into a customer is the
  shop's backend's call). Anything else -> 403 naming each item's index and type.
- **Identity verification** (on when PERSONA_IDENTITY_SECRET or PERSONA_IDENTITY_SECRET_FILE
  is set). The shop's backend computes ``identity_hash(secret, customer_id)`` (hex
  HMAC-SHA256) for the signed-in customer and hands it to the page; the SDK sends it with
  every request as ``X-Persona-Identity-Hash`` or ``?identity_hash=`` (sendBeacon cannot set
  headers). A publishable request then carries events of one customer only, and unless that
  customer id starts with ``ANON_PREFIX`` (the ids the SDK makes up) the hash must match
  (constant-time compare), else 403.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Iterable, Mapping

from app.rules.events import ALIAS, ANON_PREFIX, SHOP_TYPES

#: ``ANON_PREFIX`` (``app.rules.events``): customer ids the browser SDK generates for visitors
#: who are not signed in; they need no identity hash. The shop must never give a signed-in
#: customer an id with this prefix.
DEFAULT_PUBLISHABLE_TYPES = tuple(t for t in SHOP_TYPES if t != "purchase")
HASH_HEADER = "X-Persona-Identity-Hash"
HASH_QUERY = "identity_hash"
MIN_SECRET_BYTES = 16


def identity_hash(secret: bytes, customer_id: str) -> str:
    """What the shop's backend computes: hex HMAC-SHA256(secret, customer_id as UTF-8)."""
    return hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()


def hash_ok(secret: bytes, customer_id: str, presented: str | None) -> bool:
    """``presented`` is the identity hash of ``customer_id``; compared in constant time."""
    if not presented:
        return False
    expected = identity_hash(secret, customer_id).encode()
    return hmac.compare_digest(expected, presented.strip().lower().encode("utf-8", "replace"))


def _types(raw: str) -> frozenset:
    if not raw.strip():
        return frozenset(DEFAULT_PUBLISHABLE_TYPES)
    wanted = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = sorted(set(wanted) - set(SHOP_TYPES))
    if unknown:
        raise ValueError(f"PERSONA_PUBLISHABLE_TYPES: unknown event types {unknown}, "
                         f"allowed: {list(SHOP_TYPES)}")
    return frozenset(wanted)


def _secret(env: Mapping[str, str]) -> bytes:
    inline, path = env.get("PERSONA_IDENTITY_SECRET", ""), env.get("PERSONA_IDENTITY_SECRET_FILE", "")
    if inline and path:
        raise ValueError("set PERSONA_IDENTITY_SECRET or PERSONA_IDENTITY_SECRET_FILE, not both")
    name, secret = "PERSONA_IDENTITY_SECRET", inline.encode()
    if path:
        name = "PERSONA_IDENTITY_SECRET_FILE"
        try:
            with open(path, "rb") as f:
                secret = f.read().strip()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
        if not secret:
            raise ValueError(f"{name}: {path} is empty")
    if secret and len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{name}: the secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def browser_config(env: Mapping[str, str]) -> tuple[frozenset, bytes]:
    """``(publishable types, identity secret or b"")`` from the environment; ValueError
    starting with the variable's name when a value is invalid."""
    return _types(env.get("PERSONA_PUBLISHABLE_TYPES", "")), _secret(env)


def browser_refusal(items: Iterable, allowed: frozenset, secret: bytes,
                    presented: str | None) -> dict | None:
    """The 403 body for a publishable key's request, or None when it may go on.

    ``items`` are the decoded request items; items that are not objects, lack a string
    ``customer_id`` or have an unknown type are left to validation (400) afterwards.
    """
    items = list(items)
    forbidden = [{"index": i, "type": item["type"]} for i, item in enumerate(items)
                 if isinstance(item, dict) and isinstance(item.get("type"), str)
                 and ((item["type"] not in allowed and item["type"] in SHOP_TYPES)
                      or item["type"] == ALIAS)]
    if forbidden:
        return {"error": "forbidden event types",
                "detail": "a publishable (browser) key may not send these types; send them "
                          "from your server with a server key",
                "items": forbidden, "allowed": sorted(allowed)}
    if not secret:
        return None
    customers = sorted({item["customer_id"] for item in items if isinstance(item, dict)
                        and isinstance(item.get("customer_id"), str)})
    if len(customers) > 1:
        return {"error": "one customer per request",
                "detail": "with identity verification on, a publishable key's request may "
                          "carry events of one customer only", "customers": len(customers)}
    if not customers or customers[0].startswith(ANON_PREFIX):
        return None
    if not hash_ok(secret, customers[0], presented):
        return {"error": "identity not verified",
                "detail": f"events of an identified customer from a publishable key need "
                          f"{HASH_HEADER} (or ?{HASH_QUERY}=): hex HMAC-SHA256 of the "
                          f"customer_id with the identity secret, computed by the shop's "
                          f"backend; anonymous ids start with {ANON_PREFIX!r}"}
    return None
