"""``POST /v1/events`` (scope ``ingest``): validate a whole request, then produce it.

Body: one event (JSON object), a JSON array of events, or NDJSON
(``application/x-ndjson``); ``text/plain`` (what ``sendBeacon`` sends) holds either.
Every event of a request is validated before anything is produced: one invalid event
-> 400 with per-item errors and nothing on the topic. Internal command types (``erase``
and anything else that is not a shop type or ``alias``) are unknown here. An ``alias``
(server keys only: ``app.auth.identity`` refuses it from publishable keys) is keyed by its
anonymous id (``app.rules.alias``). A missing ``event_id`` is
assigned (uuid4), a missing ``ts`` is the receive time. Each event (the client's JSON
plus the assigned fields) goes to ``events`` keyed by customer_id; the answer is 202
only after the broker acknowledged every one, else 503 with Retry-After. The 202 carries
``token``: per partition written, the highest offset the broker acknowledged
(``app.consistency.positions``); a read with ``?after=<token>`` reflects these events (``web.positions``).

A publishable (browser) key's request is first checked by ``app.auth.identity``: only
PERSONA_PUBLISHABLE_TYPES, and with identity verification on one customer per request
whose identity hash (``X-Persona-Identity-Hash`` or ``?identity_hash=``) must match unless
the id is anonymous -> else 403, nothing produced.

Retrying a 503 is safe when the client sets ``event_id`` itself (the SDK and
``app.client`` do): the state rules drop a redelivered event id.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

import orjson

from app.auth.apikeys import PUBLISHABLE
from app.auth.identity import HASH_HEADER, HASH_QUERY, browser_refusal
from app.consistency.positions import encode
from app.kafka.webview import View
from app.main import app
from app.rules.events import SERVER_TYPES, SHOP_TYPES, InvalidEvent, key_of, validate_dict
from app.settings import settings
from app.topics import BROWSER_SOURCE, SOURCE_HEADER, events_topic
from web import ratelimit
from web.auth import SCOPES_KEY, require

log = logging.getLogger(__name__)
JSON, NDJSON, TEXT = "application/json", "application/x-ndjson", "text/plain"
RETRY_AFTER_S = 2
INGEST_TYPES = SHOP_TYPES + SERVER_TYPES
UNKNOWN_TYPE = {"type": [f"Must be one of: {', '.join(INGEST_TYPES)}."]}


class Reject(Exception):
    """An answer other than 202; nothing has been produced."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body.get("error"))
        self.status, self.body, self.headers = status, body, headers or {}


def cors_headers(request, preflight: bool = False) -> dict:
    origin = request.headers.get("Origin")
    allowed = settings.cors_origins
    if not origin or not (origin in allowed or "*" in allowed):
        return {}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
               "Access-Control-Expose-Headers": "Retry-After"}
    if preflight:
        headers.update({
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": f"Authorization, Content-Type, {HASH_HEADER}",
            "Access-Control-Max-Age": "600",
        })
    return headers


async def read_capped(request, limit: int) -> bytes:
    """The body, never reading more than ``limit`` + one chunk into memory."""
    too_big = Reject(413, {"error": "request too large", "max_bytes": limit})
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    buf = bytearray()
    while chunk := await request.content.read(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            raise too_big
    return bytes(buf)


def too_many(n: int) -> Reject:
    return Reject(413, {"error": "too many events", "max_events": settings.ingest_max_events,
                        "events": n})


def decode(body: bytes, content_type: str) -> list:
    """Items of the request: decoded JSON values, or InvalidEvent for a bad NDJSON line."""
    if content_type in (JSON, TEXT):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if content_type == JSON:
                raise Reject(400, {"error": "malformed JSON", "detail": str(exc)}) from None
        else:
            return data if isinstance(data, list) else [data]
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) > settings.ingest_max_events:
        raise too_many(len(lines))
    items = []
    for line in lines:
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(InvalidEvent("malformed JSON", {"_schema": [str(exc)]}))
    return items


#: Deepest nesting an event may have (its items are 2 levels deep). Unknown fields are kept
#: on the topic as sent; past this (orjson encodes at most 254 levels) they are refused by
#: name rather than failing later with a generic error.
MAX_DEPTH = 32


def depth_over(value, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            if level > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children
                         if isinstance(child, (dict, list)))
    return False


def prepare(item, now_ms: int) -> dict:
    """The event as it goes to the topic (client JSON + assigned fields), validated."""
    if isinstance(item, InvalidEvent):
        raise item
    if not isinstance(item, dict):
        raise InvalidEvent("event is not a JSON object", {"_schema": ["Expected a JSON object."]})
    if depth_over(item):
        raise InvalidEvent("nested too deeply",
                           {"_schema": [f"More than {MAX_DEPTH} levels of nesting."]})
    if item.get("type") not in INGEST_TYPES:  # erase and other internal commands included
        raise InvalidEvent("unknown event type", UNKNOWN_TYPE)
    event = dict(item)
    event.setdefault("event_id", str(uuid.uuid4()))
    event.setdefault("ts", now_ms)
    validate_dict(event)
    return event


def validated(items: list, now_ms: int) -> list[tuple[bytes, bytes, str]]:
    if not items:
        raise Reject(400, {"error": "no events"})
    if len(items) > settings.ingest_max_events:
        raise too_many(len(items))
    records, errors, unexpected = [], [], []
    first_at: dict = {}  # event_id -> index of its first event in this request
    for index, item in enumerate(items):
        try:
            event = prepare(item, now_ms)
            eid = event["event_id"]
            if eid in first_at:  # the second would be dropped as a duplicate: say so now
                raise InvalidEvent("duplicate event_id", {"event_id": [
                    f"Also the event_id of the event at index {first_at[eid]}."]})
            first_at[eid] = index
            records.append((key_of(event).encode(), orjson.dumps(event), eid))
        except InvalidEvent as exc:
            errors.append({"index": index, "reason": exc.reason, "errors": exc.errors})
        except Exception as exc:  # never a 500 for a client's data
            unexpected.append((index, exc))
            errors.append({"index": index, "reason": "invalid event",
                           "errors": {"_schema": ["Could not be validated."]}})
    if unexpected:  # one line per request, however many events failed
        log.warning("%d event(s) of a request could not be validated, first at index %d: %r",
                    len(unexpected), unexpected[0][0], unexpected[0][1])
    if errors:
        raise Reject(400, {"error": "invalid events", "invalid": len(errors),
                           "total": len(items), "items": errors})
    return records


#: What a publishable key sent. A tuple: Faust merges headers into a list it is given in
#: place, and copies a tuple, so the constant stays what it is.
BROWSER_HEADERS = ((SOURCE_HEADER, BROWSER_SOURCE),)


async def produce(records, browser: bool = False) -> str:
    """Send every record, wait for the broker's acknowledgement of each; the token of the
    highest acknowledged offset per partition. ``browser``: the publishable-key mark.

    Each wait is shielded: when the caller's timeout cancels this coroutine, the records are
    already in the producer's batches and go out anyway (hence "retry with the same
    event_ids"); cancelling the producer's future as well would only hide their outcome from
    Faust's completion callback, which then logs a CancelledError traceback per record
    (every POST that timed out while a broker failed over) and never tells the sensors."""
    headers = BROWSER_HEADERS if browser else None
    futures = [await events_topic.send(key=key, value=value, headers=headers)
               for key, value, _ in records]
    written: dict[int, int] = {}
    for fut in futures:
        meta = await asyncio.shield(fut)
        written[meta.partition] = max(meta.offset, written.get(meta.partition, meta.offset))
    return encode(written)


async def ingest(request) -> tuple[int, dict]:
    content_type = request.content_type  # without parameters such as charset
    if content_type not in (JSON, NDJSON, TEXT):
        raise Reject(415, {"error": "unsupported content type", "accepted": [JSON, NDJSON, TEXT]})
    body = await read_capped(request, settings.ingest_max_bytes)
    items = decode(body, content_type)
    limited = ratelimit.charge_ingest(request, len(items))
    if limited is not None:
        raise Reject(429, *limited)
    browser = PUBLISHABLE in request.get(SCOPES_KEY, ())
    if browser:
        presented = request.headers.get(HASH_HEADER) or request.query.get(HASH_QUERY)
        refusal = browser_refusal(items, settings.publishable_types, settings.identity_secret,
                                  presented)
        if refusal is not None:
            raise Reject(403, refusal)
    records = validated(items, int(time.time() * 1000))
    try:
        token = await asyncio.wait_for(produce(records, browser), settings.ingest_timeout_s)
    except Exception as exc:  # broker down, timeout, producer error: never a 202
        log.warning("ingest of %s events failed: %r", len(records), exc)
        raise Reject(503, {"error": "unavailable", "detail": "the broker did not acknowledge "
                           "the events; retry with the same event_ids"},
                     {"Retry-After": str(RETRY_AFTER_S)}) from None
    return 202, {"accepted": len(records), "event_ids": [eid for _, _, eid in records],
                 "token": token}


@app.page("/v1/events")
class Events(View):
    async def post(self, request):
        response = await self._post(request)
        response.headers.update(cors_headers(request))
        return response

    @require("ingest", query_key=True)
    async def _post(self, request):
        try:
            status, body = await ingest(request)
            return self.json(body, status=status)
        except Reject as exc:
            response = self.json(exc.body, status=exc.status, headers=exc.headers)
            if exc.status == 413:
                response.force_close()  # do not drain a huge body
            return response

    async def options(self, request):
        headers = {"Allow": "POST, OPTIONS", **cors_headers(request, preflight=True)}
        return self.bytes(b"", status=204, headers=headers)
