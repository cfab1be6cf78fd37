"""The Segment HTTP Tracking API's wire: write keys, gzip bodies, calls, answers.

What the clients send (analytics-python, rudder-sdk-python, analytics.js): the write key as
HTTP Basic username with an empty password (older clients, and callers that cannot set
headers, put it in the body as ``writeKey``); ``Content-Encoding: gzip`` bodies; one call per
request, or ``{"batch": [calls], "sentAt", "context"}`` on ``/batch``. What they expect back:
any 2xx is success; an error body is a JSON object with ``code`` and ``message`` (the Python
clients read both, and rudder-sdk-python treats a body without them as a network failure and
retries it). Persona's own ``error``/``detail`` fields stay beside them.
"""
from __future__ import annotations

import base64
import binascii
import re

import orjson

from app.rules.segment import CALLS, SHORT_PATHS
from web.auth import api_key_identity, bearer_identity
from web.ingest import Reject

JSON, TEXT = "application/json", "text/plain"
#: Every call path: the Segment names, ``batch``, and analytics.js's one-letter paths.
PATHS = {**{c: c for c in CALLS}, **SHORT_PATHS, "batch": "batch", "b": "batch"}


def key_identity(key: str | None) -> tuple:
    """``(scopes, principal, audit key id)`` of an API key used as a write key."""
    return api_key_identity(key) if key else (None, None, None)


def basic_user(header: str) -> str | None:
    """The username of ``Authorization: Basic base64(user:password)``; the write key. The
    password carries nothing in Segment's protocol (the clients send it empty) and is ignored."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded.partition(":")[0] or None


async def header_identity(header: str) -> tuple:
    """A write key in Basic auth, or a Persona bearer (API key or JWT), as ``require`` does."""
    if header[:6].lower() == "basic ":
        return key_identity(basic_user(header))
    return await bearer_identity(header)


def body_key(data) -> str | None:
    """``writeKey`` in the body: top level (a call, or a batch), else the batch's first call."""
    if not isinstance(data, dict):
        return None
    key = data.get("writeKey")
    batch = data.get("batch")
    if key is None and isinstance(batch, list) and batch and isinstance(batch[0], dict):
        key = batch[0].get("writeKey")
    return key if isinstance(key, str) else None


def check_content(request) -> None:
    """JSON or text/plain (what analytics.js sends, so that no CORS preflight is needed)."""
    if request.content_type not in (JSON, TEXT, "application/octet-stream"):
        raise Reject(415, {"error": "unsupported content type", "accepted": [JSON, TEXT]})
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "deflate"):
        raise Reject(415, {"error": "unsupported content encoding",
                           "accepted": ["gzip", "deflate"]})


def decoded(body: bytes):
    """The JSON of the body. aiohttp has already inflated a gzip body, a chunk at a time as it
    is read, so ``read_capped``'s limit holds for the inflated bytes (a small body can inflate
    to gigabytes)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Reject(400, {"error": "malformed JSON", "detail": str(exc)}) from None


def calls_of(data, path: str) -> tuple[list, object]:
    """``(calls, the batch's sentAt)``. On ``/batch`` the calls are ``batch`` (a body without
    one is taken as one call); on a call's path the body is that call, of that type."""
    if not isinstance(data, dict):
        raise Reject(400, {"error": "invalid body", "detail": "expected a JSON object"})
    kind = PATHS[path]
    if kind != "batch":
        return [{**data, "type": kind}], None
    batch = data.get("batch", [data])
    if not isinstance(batch, list):
        raise Reject(400, {"error": "invalid body", "detail": "batch must be an array"})
    if not batch:
        raise Reject(400, {"error": "no events", "detail": "the batch is empty"})
    return batch, data.get("sentAt")


def segment_body(status: int, body: dict) -> dict:
    """A Persona error body with the fields Segment's clients read (``code``, ``message``)."""
    code = re.sub(r"[^a-z0-9]+", "_", str(body.get("error", "error")).lower()).strip("_")
    message = body.get("detail") or body.get("error") or f"HTTP {status}"
    return {"success": False, "code": code, "message": message, **body}
