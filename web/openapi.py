"""The OpenAPI 3 description of every route, served at ``GET /openapi.json`` (no auth).

No auth because it describes the API and holds no customer data (like the SDK).
Event schemas are generated from the marshmallow schemas in ``app.rules.events``, so they
cannot drift; ``tests/unit/test_openapi.py`` checks that the documented paths and methods
are exactly the routes the app registers. ``python -m web.openapi`` prints it.
"""
from __future__ import annotations

import orjson

from app.kafka.webview import View
from app.main import app
from app.rules.events import ALIAS, ID_RE, SHOP_TYPES
from app.settings import settings
from web.openapi_kpis import KPI_PARAMS, KPIS_SCHEMA
from web.openapi_schemas import event_schema
from web.openapi_segment import SEGMENT_PATH, WRITE_KEY_SCHEME

BEARER = [{"bearer": []}]
OBJ = {"type": "object"}


def op(summary: str, responses: dict, security=None, **extra) -> dict:
    out = {"summary": summary, "responses": {
        str(code): {"description": d} if isinstance(d, str) else d
        for code, d in responses.items()}, **extra}
    out["security"] = security if security is not None else []
    return out


def json_response(description: str, ref: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


CID = [{"name": "customer_id", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": ID_RE}}]
AUTH_ERRORS = {401: "no valid API key or JWT", 403: "the key or token lacks the scope"}
METRICS_OFF = "the worker runs with PERSONA_METRICS=off (JSON error naming it)"
# No pattern: the hash is only compared (where one is needed), never parsed, so any other
# value is "not verified" (403) where a hash is needed and ignored elsewhere.
IDENTITY_HASH = {"name": "X-Persona-Identity-Hash", "in": "header", "required": False,
                 "schema": {"type": "string"},
                 "description": "64 hex digits: HMAC-SHA256(PERSONA_IDENTITY_SECRET, "
                                "customer_id), computed by the shop's backend; needed for "
                                "publishable keys' identified customers, ignored otherwise"}
RATE_LIMITED = {"description": "over this worker's rate limit for the key (PERSONA_RATE_*); "
                               "nothing done; retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                            "description": "whole seconds to wait"}},
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/RateLimited"}}}}
READ_ERRORS = {400: "malformed customer id, after, wait_ms or limit (field errors)", **AUTH_ERRORS,
               404: "unknown customer; for an anonymous id merged by an alias, the body's "
                    "merged_into names the customer", 429: RATE_LIMITED,
               503: "owner restoring the partition or unreachable, or (with after) it has not "
                    "applied the token's write within wait_ms: the body says how far it has "
                    "(partition, after, applied); see Retry-After"}
AFTER = [{"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "the token of a POST /v1/events answer: the answer reflects that "
                         "write (read your writes); it must have an entry for this customer's "
                         "partition"},
         {"name": "wait_ms", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 0, "maximum": 5000, "default": 1000},
          "description": "how long the owner may wait for the write before answering 503"}]


IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "schema": {"type": "string"}, "description": "ETag of an earlier answer"}
CACHE_HEADERS = {"ETag": {"schema": {"type": "string"}, "description": "tag of this answer"},
                 "Cache-Control": {"schema": {"type": "string"},
                                   "description": "private, no-cache"}}


LIMIT = {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
         "description": "how many products (and categories) at most"}


def read_op(summary: str, operation_id: str, extra: tuple = ()) -> dict:
    ok = {**json_response(summary, "State"), "headers": CACHE_HEADERS}
    not_modified = {"description": "unchanged since the ETag in If-None-Match (no body)",
                    "headers": CACHE_HEADERS}
    return {"get": op(summary, {200: ok, 304: not_modified, **READ_ERRORS}, BEARER,
                      parameters=[*CID, IF_NONE_MATCH, *AFTER, *extra],
                      description="scope: read", operationId=operation_id)}


def read_link(operation_id: str, customer: str = "$request.body#/customer_id") -> dict:
    """OpenAPI link from an accepted write (one event, or an erase) to a read of its
    customer after its token: the owner answers once it has applied the write."""
    return {"operationId": operation_id,
            "parameters": {"customer_id": customer,
                           "after": "$response.body#/token", "wait_ms": 5000},
            "description": "read the customer after the write (read your writes)"}


BATCH = {"oneOf": [{"$ref": "#/components/schemas/Event"},
                   {"type": "array", "items": {"$ref": "#/components/schemas/Event"},
                    "minItems": 1, "maxItems": settings.ingest_max_events}]}
ACCEPTED = {**json_response("all events acknowledged by the broker", "Accepted"), "links": {
    "activity": read_link("getActivity"), "profile": read_link("getProfile"),
    "recommendations": read_link("getRecommendations"),
    "erase": {"operationId": "eraseCustomer",
              "parameters": {"customer_id": "$request.body#/customer_id"}}}}
INGEST = op(
    "Ingest events (scope: ingest)",
    {202: ACCEPTED,
     400: json_response("invalid events; nothing produced", "Invalid"), **AUTH_ERRORS,
     403: json_response("the key lacks the scope, or a publishable key's request was refused "
                        "(forbidden event types with their index and type, more than one "
                        "customer, identity not verified); nothing produced", "Refused"),
     413: "over PERSONA_INGEST_MAX_BYTES or PERSONA_INGEST_MAX_EVENTS",
     415: "unsupported content type", 429: RATE_LIMITED,
     503: "broker did not acknowledge; see Retry-After"},
    [{"bearer": []}, {"publishableKey": []}],
    operationId="ingestEvents",
    description="Publishable (browser) keys, and any key sent as ?key=, may send only "
                "PERSONA_PUBLISHABLE_TYPES (never alias); with identity verification on, one "
                "customer per request and, unless its id starts with 'anon-', its identity "
                "hash. An alias event (server keys) merges its anonymous_id into customer_id.",
    parameters=[IDENTITY_HASH, {"name": "identity_hash", "in": "query", "required": False,
                                "schema": {"type": "string"},
                                "description": "the identity hash, for sendBeacon"}],
    requestBody={"required": True, "content": {
        "application/json": {"schema": BATCH},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one event a line"}},
        "text/plain": {"schema": {"type": "string", "description": "JSON or NDJSON (sendBeacon)"}}}},
)

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Persona", "version": "1",
             "description": "Real-time customer state: events in, per-customer state out."},
    "paths": {
        "/health": {"get": op("Liveness", {200: "alive"})},
        "/ready": {"get": op("Readiness (recovery done)", {200: "ready", 503: "recovering"})},
        "/openapi.json": {"get": op("This document", {200: "OpenAPI 3 JSON"})},
        "/metrics": {"get": op(
            "Prometheus metrics of this worker (scope: metrics)",
            {200: {"description": "Prometheus text exposition format 0.0.4",
                   "content": {"text/plain": {"schema": {"type": "string"}}}},
             **AUTH_ERRORS, 404: METRICS_OFF}, BEARER,
            description="scope: metrics (admin implies it)")},
        "/sdk/persona.js": {"get": op("Browser SDK", {200: "JavaScript"})},
        "/dashboard": {"get": op("Live dashboard page (asks for a key with read and metrics)",
                                 {200: "HTML"})},
        "/dashboard/uPlot.iife.min.js": {"get": op("uPlot 1.6.32 (MIT), the page's charts",
                                                   {200: "JavaScript"})},
        "/dashboard/uPlot.min.css": {"get": op("uPlot's style sheet", {200: "CSS"})},
        "/dashboard/uPlot.LICENSE": {"get": op("uPlot's licence (MIT)", {200: "text"})},
        "/v1/ops": {"get": op(
            "Operational figures of every worker, as JSON (scope: metrics)",
            {200: {"description": "events and webhook requests by outcome, lag, outbox "
                                  "backlog, readable-freshness buckets (cumulative), "
                                  "workers counted and unreachable",
                   "content": {"application/json": {"schema": OBJ}}},
             **AUTH_ERRORS, 404: METRICS_OFF}, BEARER,
            description="scope: metrics (admin implies it)")},
        "/demo/shop": {"get": op("Demo shop page using the SDK",
                                 {200: "HTML", 404: "demo disabled (PERSONA_DEMO_KEY unset)"},
                                 parameters=[{"name": "customer", "in": "query",
                                              "required": False, "schema": {"type": "string"},
                                              "description": "sign in as this demo- customer"}])},
        "/demo/order": {"post": op(
            "Demo shop backend: record the page's purchase (demo- and anon- customers)",
            {202: json_response("purchase acknowledged by the broker", "Accepted"),
             400: "not one valid purchase event of a demo- or anon- customer",
             403: "identity not verified, or webhooks are configured",
             404: "demo disabled (PERSONA_DEMO_KEY unset)",
             413: "body over 64 KiB",
             429: "over the demo's order rate for this client address; see Retry-After",
             503: "broker did not acknowledge; see Retry-After"},
            parameters=[IDENTITY_HASH],
            requestBody={"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/DemoOrder"}}}})},
        "/v1/events": {
            "post": INGEST,
            "options": op("CORS preflight (PERSONA_CORS_ORIGINS)", {204: "preflight answer"}),
        },
        "/segment/v1/{call}": SEGMENT_PATH,
        "/v1/customers/{customer_id}/activity": read_op("Current session", "getActivity"),
        "/v1/customers/{customer_id}/profile": read_op("Profile", "getProfile"),
        "/v1/customers/{customer_id}/recommendations": read_op(
            "Recommendations", "getRecommendations", (LIMIT,)),
        "/v1/kpis": {"get": op(
            "Business KPIs of all customers per event-time window (scope: read)",
            {200: json_response("totals over the range and one entry per window with data",
                                "Kpis"),
             400: "bad window, from or to (field errors)", **AUTH_ERRORS, 429: RATE_LIMITED,
             503: "some partitions' KPIs are not available (restoring, moving or a worker "
                  "unreachable): missing_partitions; see Retry-After"},
            BEARER, description="scope: read. Sums the windows of every events partition "
                                "across all workers, or answers 503.",
            parameters=KPI_PARAMS)},
        "/v1/customers/{customer_id}": {"delete": op(
            "Erase a customer (scope: admin)",
            {202: {**json_response("audited, erase queued on events", "Erased"), "links": {
                "profile": read_link("getProfile", "$request.path.customer_id"),
                "activity": read_link("getActivity", "$request.path.customer_id")}},
             400: "malformed customer id", **AUTH_ERRORS,
             503: "broker unavailable; see Retry-After"}, BEARER, parameters=CID,
            operationId="eraseCustomer")},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a PERSONA_API_KEYS entry ('publishable' marks a "
                                      "browser key), or a JWT from the shop's identity provider "
                                      "(PERSONA_JWT_*); scopes ingest, read, admin, metrics"},
            "segmentWriteKey": WRITE_KEY_SCHEME,
            "publishableKey": {"type": "apiKey", "in": "query", "name": "key",
                               "description": "POST /v1/events only, ingest-only keys only; "
                                              "always treated as publishable"},
        },
        "schemas": {
            "Event": {"oneOf": [{"$ref": f"#/components/schemas/{t}"}
                                for t in SHOP_TYPES + (ALIAS,)]},
            **{t: event_schema(t) for t in SHOP_TYPES + (ALIAS,)},
            "DemoOrder": {"allOf": [{"$ref": "#/components/schemas/purchase"}, {
                "type": "object", "properties": {"customer_id": {
                    "type": "string", "pattern": r"^(demo|anon)-[A-Za-z0-9._:@\-]{1,123}$"}}}]},
            "Accepted": {"type": "object", "properties": {
                "accepted": {"type": "integer"},
                "event_ids": {"type": "array", "items": {"type": "string"}},
                "token": {"type": "string", "description": "read-your-writes token: pass "
                          "as ?after= to a read of these customers"}}},
            "Erased": {"type": "object", "properties": {
                "status": {"type": "string"}, "customer_id": {"type": "string"},
                "event_id": {"type": "string"},
                "token": {"type": "string", "description": "read-your-writes token of the "
                          "erase: a read with ?after= answers once it is applied"}}},
            "Invalid": {"type": "object", "properties": {
                "error": {"type": "string"}, "invalid": {"type": "integer"},
                "total": {"type": "integer"},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "reason": {"type": "string"},
                    "errors": {"type": "object"}}}}}},
            "Refused": {"type": "object", "properties": {
                "error": {"type": "string"}, "detail": {"type": "string"},
                "allowed": {"type": "array", "items": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "type": {"type": "string"}}}}}},
            "RateLimited": {"type": "object", "required": ["error", "limit", "retry_after"],
                            "properties": {
                "error": {"type": "string", "enum": ["rate limited"]},
                "limit": {"type": "string", "enum": ["ingest", "read", "publishable"]},
                "retry_after": {"type": "integer", "minimum": 1},
                "detail": {"type": "string"}}},
            "Kpis": KPIS_SCHEMA,
            "State": {**OBJ, "properties": {"customer_id": {"type": "string"},
                                            "as_of": {"type": "integer"}}},
        },
    },
}
DOCUMENT = orjson.dumps(SPEC, option=orjson.OPT_INDENT_2)


@app.page("/openapi.json")
class OpenApi(View):
    async def get(self, request):
        return self.bytes(DOCUMENT, content_type="application/json")


if __name__ == "__main__":  # pragma: no cover
    print(DOCUMENT.decode())
