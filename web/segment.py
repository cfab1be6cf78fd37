"""``POST /segment/v1/{call}``: the Segment HTTP Tracking API, so that Segment-spec clients
(analytics.js, analytics-python, RudderStack, Jitsu) send to Persona by changing their host.

Calls: ``batch``, ``track``, ``identify``, ``page``, ``screen``, ``group``, ``alias`` and
analytics.js's one-letter paths (``t``, ``i``, ``p``, ``s``, ``g``, ``a``, ``b``). The write key
is a Persona API key (``web.segment_wire``): same scopes, and a publishable key has the same
type policy and identity rules as on ``POST /v1/events`` (``app.auth.identity``: an ``Order
Completed`` or ``alias`` from one is 403, nothing produced). Each call is mapped by the pure
``app.rules.segment``: the events it stands for go to ``events``, an invalid one to
``events-dlq`` with the reason, one Persona does not use is only counted
(``persona_segment_calls_total``). The answer is 200 ``{"success": true}`` once the broker
acknowledged every record (plus ``event_ids`` and a read-your-writes ``token``); a whole
request's problems are 4xx with ``code`` and ``message`` (the clients do not retry those), a
broker that did not acknowledge is 503 with Retry-After (the clients retry, same messageIds).
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from app.auth.apikeys import PUBLISHABLE
from app.auth.identity import HASH_HEADER, HASH_QUERY, browser_refusal
from app.kafka.webview import View
from app.main import app
from app.observability import metrics
from app.rules.events import key_of
from app.rules.segment import INVALID, STORED, call_label, convert
from app.settings import settings
from app.topics import dlq_record, events_dlq
from web import ratelimit
from web.auth import KEY_ID_KEY, SCOPES_KEY, UNAUTHORIZED
from web.ingest import RETRY_AFTER_S, Reject, cors_headers, produce, read_capped, too_many
from web.ratelimit import PRINCIPAL_KEY
from web.segment_wire import (
    PATHS,
    body_key,
    calls_of,
    check_content,
    decoded,
    header_identity,
    key_identity,
    segment_body,
)

log = logging.getLogger(__name__)
DEAD_LETTERED, REFUSED, UNAVAILABLE = "dead_lettered", "refused", "unavailable"


def count(calls: list, outcomes: list) -> None:
    for call, outcome in zip(calls, outcomes, strict=True):
        metrics.SEGMENT_CALLS.labels(call_label(call), outcome).inc()


def dead_letter(call, reason: str, errors: dict, path: str, index: int, now_ms: int) -> bytes:
    """An ``events-dlq`` record like the customers agent's; ``source`` names the request and
    the call instead of a topic position."""
    return dlq_record(orjson.dumps(call, option=orjson.OPT_NON_STR_KEYS), reason, errors,
                      {"http": f"/segment/v1/{path}", "index": index}, now_ms)


async def authenticate(request, data=None) -> None:
    header = request.headers.get("Authorization")
    scopes, principal, key_id = (await header_identity(header) if header
                                 else key_identity(body_key(data)))
    if scopes is None:
        raise Reject(401, dict(UNAUTHORIZED), {"WWW-Authenticate": 'Basic realm="persona"'})
    if "ingest" not in scopes and "admin" not in scopes:
        raise Reject(403, {"error": "forbidden", "detail": "needs scope 'ingest'"})
    request[SCOPES_KEY], request[PRINCIPAL_KEY], request[KEY_ID_KEY] = scopes, principal, key_id
    limited = ratelimit.admit("ingest", request)
    if limited is not None:
        raise Reject(429, *limited)


def refuse_browser(request, calls: list, results: list) -> None:
    """A publishable key's request: the same 403s as ``POST /v1/events``, on the events the
    calls stand for (indexes are the calls')."""
    items, index_of = [], []
    for index, result in enumerate(results):
        for event in result.events:
            items.append(event)
            index_of.append(index)
    presented = request.headers.get(HASH_HEADER) or request.query.get(HASH_QUERY)
    refusal = browser_refusal(items, settings.publishable_types, settings.identity_secret,
                              presented)
    if refusal is not None:
        for item in refusal.get("items", ()):
            call = calls[index_of[item["index"]]]
            item.update(index=index_of[item["index"]], event=call.get("event", call["type"]))
        raise Reject(403, refusal)


async def segment(request, path: str) -> dict:
    check_content(request)
    header = request.headers.get("Authorization")
    if header:  # refused before the body is read
        await authenticate(request)
    data = decoded(await read_capped(request, settings.ingest_max_bytes))
    if not header:
        await authenticate(request, data)
    calls, sent_at = calls_of(data, path)
    outcomes = [REFUSED] * len(calls)
    try:
        if len(calls) > settings.ingest_max_events:
            raise too_many(len(calls))
        limited = ratelimit.charge_ingest(request, len(calls))
        if limited is not None:
            raise Reject(429, *limited)
        browser = PUBLISHABLE in request[SCOPES_KEY]
        now_ms = int(time.time() * 1000)
        results = [convert(call, not browser, now_ms, sent_at) for call in calls]
        if browser:
            refuse_browser(request, calls, results)
        records = [(key_of(e).encode(), orjson.dumps(e), e["event_id"])
                   for r in results for e in r.events]
        letters = [dead_letter(call, r.reason, r.errors, path, i, now_ms)
                   for i, (call, r) in enumerate(zip(calls, results, strict=True))
                   if r.outcome == INVALID]
        try:
            token = await asyncio.wait_for(write(records, letters, browser),
                                           settings.ingest_timeout_s)
        except Exception as exc:  # broker down, timeout, producer error: never a 200
            log.warning("Segment ingest of %d calls failed: %r", len(calls), exc)
            outcomes = [UNAVAILABLE] * len(calls)
            raise Reject(503, {"error": "unavailable", "detail": "the broker did not "
                               "acknowledge the events; retry with the same messageIds"},
                         {"Retry-After": str(RETRY_AFTER_S)}) from None
        outcomes = [DEAD_LETTERED if r.outcome == INVALID else r.outcome for r in results]
    finally:
        count(calls, outcomes)
    answer = {"success": True, "stored": sum(o == STORED for o in outcomes),
              "dead_lettered": len(letters), "event_ids": [eid for _, _, eid in records]}
    return {**answer, "token": token} if token else answer


async def write(records: list, letters: list, browser: bool) -> str | None:
    futures = [await events_dlq.send(key=None, value=value) for value in letters]
    token = await produce(records, browser) if records else None  # a token names a partition
    await asyncio.gather(*futures)
    return token


@app.page("/segment/v1/{call}")
class SegmentCalls(View):
    async def post(self, request, call):
        if call not in PATHS:
            response = self.json(segment_body(404, {"error": "unknown call", "detail":
                                 f"one of: {', '.join(PATHS)}"}), status=404)
        else:
            try:
                response = self.json(await segment(request, call))
            except Reject as exc:
                response = self.json(segment_body(exc.status, exc.body), status=exc.status,
                                     headers=exc.headers)
                if exc.status == 413:
                    response.force_close()  # do not drain a huge body
        response.headers.update(cors_headers(request))
        return response

    async def options(self, request, call):
        headers = {"Allow": "POST, OPTIONS", **cors_headers(request, preflight=True)}
        return self.bytes(b"", status=204, headers=headers)
