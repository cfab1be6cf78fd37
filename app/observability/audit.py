"""Audit records of admin actions (erase, redrive) for the ``audit`` topic (pure: no I/O).

One small JSON object per action, written *before* the action takes effect (an erase
command is produced only after its audit record is acknowledged; a redrive commits its DLQ
offsets only after its record is), key = the target:

    {"at": 1764393120123, "action": "erase", "target": "customer:c-17",
     "key_id": "key:3f1c0a9be2d4f6a1", "ref": "<erase command event_id>"}
    {"at": 1764393180456, "action": "redrive", "target": "subscription:crm",
     "key_id": "key:3f1c0a9be2d4f6a1", "count": 6}

``at`` is epoch milliseconds. ``key_id`` says who, never with a secret: ``key:`` + the
first 16 hex digits of the API key's SHA-256 (the same hex a ``sha256:<hex>`` entry of
``PERSONA_API_KEYS`` holds), ``jwt:`` + the token's ``sub`` for a JWT bearer (a token
without ``sub``: ``jwt-token:`` + a digest prefix of the token), or ``local:`` + the OS
user for ``persona-redrive`` run without ``PERSONA_ADMIN_KEY``.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import orjson

ACTIONS = ("erase", "redrive")
PREFIX_HEX = 16
MAX_ID = 128


def key_id(key: str) -> str:
    return key_id_of(hashlib.sha256(key.encode()).hexdigest())


def key_id_of(hexdigest: str) -> str:
    """The key id of an API key whose SHA-256 is ``hexdigest``."""
    return "key:" + hexdigest[:PREFIX_HEX]


def jwt_key_id(claims: dict, token: str) -> str:
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        return ("jwt:" + sub)[:MAX_ID]
    return "jwt-token:" + hashlib.sha256(token.encode()).hexdigest()[:PREFIX_HEX]


def local_key_id(user: str) -> str:
    return ("local:" + (user or "unknown"))[:MAX_ID]


def record(action: str, target: str, key: Optional[str], now_ms: int, **extra) -> tuple:
    """``(kafka key, value)`` of one audit record; ``extra`` adds small scalar fields."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if any(not isinstance(v, (str, int, bool, type(None))) for v in extra.values()):
        raise ValueError("audit extras must be scalars")
    value = {"at": now_ms, "action": action, "target": target, "key_id": key or "unknown",
             **extra}
    return target.encode(), orjson.dumps(value)
