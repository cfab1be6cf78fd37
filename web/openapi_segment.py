"""The Segment-spec route's OpenAPI description (data only; ``web.openapi`` serves it)."""
from __future__ import annotations

from app.rules.segment import CALLS, TRACKED
from app.settings import settings
from web.segment_wire import PATHS

OBJ = {"type": "object"}
TEXT = {"type": "string"}
CALL = {"type": "object", "properties": {
    "type": {"type": "string", "enum": list(CALLS),
             "description": "in a batch; on a call's path the path says it"},
    "userId": TEXT, "anonymousId": TEXT, "previousId": TEXT, "messageId": TEXT,
    "event": {"type": "string", "description": "track: the E-commerce spec v2 names Persona "
                                               f"stores: {', '.join(TRACKED)}"},
    "timestamp": {"type": "string", "format": "date-time"},
    "sentAt": {"type": "string", "format": "date-time"},
    "properties": OBJ, "traits": OBJ, "context": OBJ, "integrations": OBJ,
    "writeKey": {"type": "string", "description": "the write key, for callers that cannot "
                                                  "send Basic auth"}}}
BODY = {"allOf": [CALL, {"type": "object", "properties": {
    "batch": {"type": "array", "items": CALL, "minItems": 1,
              "maxItems": settings.ingest_max_events}}}]}
ERROR = {"type": "object", "required": ["success", "code", "message"], "properties": {
    "success": {"type": "boolean", "enum": [False]}, "code": TEXT, "message": TEXT,
    "error": TEXT, "detail": TEXT}}


def answer(description: str, schema: dict | None = None, headers: dict | None = None) -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": schema or ERROR}}}
    if headers:
        out["headers"] = headers
    return out


RETRY = {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                         "description": "whole seconds to wait"}}
OK = {"type": "object", "required": ["success"], "properties": {
    "success": {"type": "boolean", "enum": [True]},
    "stored": {"type": "integer", "description": "calls that became Persona events"},
    "dead_lettered": {"type": "integer", "description": "calls with invalid fields, on "
                                                        "events-dlq with the reason"},
    "event_ids": {"type": "array", "items": TEXT},
    "token": {"type": "string", "description": "read-your-writes token (as POST /v1/events)"}}}
SEGMENT_PATH = {
    "post": {
        "summary": "Segment HTTP Tracking API (scope: ingest; the write key is a Persona key)",
        "description": "Segment-spec calls mapped onto Persona's events (docs/ingest.md, "
                       "Segment-spec tracking API). Calls Persona does not use are "
                       "acknowledged and counted; calls with invalid fields go to events-dlq; "
                       "a publishable key has the type policy and identity rules of "
                       "POST /v1/events. Content-Encoding: gzip is accepted.",
        "operationId": "segmentCall",
        "parameters": [{"name": "call", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(PATHS)},
                        "description": "the call, batch, or analytics.js's one-letter path"}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": BODY},
            "text/plain": {"schema": {"type": "string",
                                      "description": "JSON, as analytics.js sends it"}}}},
        "responses": {
            "200": answer("every record acknowledged by the broker", OK),
            "400": answer("malformed JSON, not an object, or an empty batch"),
            "401": answer("no valid write key (Basic username, writeKey) or bearer"),
            "403": answer("the key lacks the ingest scope, or a publishable key's request was "
                          "refused as on POST /v1/events; nothing produced"),
            "404": answer("unknown call"),
            "413": answer("over PERSONA_INGEST_MAX_BYTES (inflated size) or "
                          "PERSONA_INGEST_MAX_EVENTS"),
            "415": answer("unsupported content type or encoding"),
            "429": answer("over a rate limit; nothing produced", headers=RETRY),
            "503": answer("the broker did not acknowledge; retry", headers=RETRY),
        },
        "security": [{"segmentWriteKey": []}, {"bearer": []}],
    },
    "options": {"summary": "CORS preflight (PERSONA_CORS_ORIGINS)",
                "parameters": [{"name": "call", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": list(PATHS)}}],
                "responses": {"204": {"description": "preflight answer"}}, "security": []},
}
WRITE_KEY_SCHEME = {"type": "http", "scheme": "basic",
                    "description": "Segment write key: a PERSONA_API_KEYS entry as the Basic "
                                   "username, empty password"}
