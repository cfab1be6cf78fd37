"""Standard Webhooks signing: ``v1,`` + base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``.

A ``whsec_`` secret is base64-decoded, any other secret is used as its utf-8 bytes.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Optional


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

