"""The OpenAPI document lists exactly the routes the app registers (paths and methods)."""
from __future__ import annotations

import importlib
import pkgutil

import orjson

import web
from app.main import app
from app.rules.events import ALIAS, SHOP_TYPES


def registered_routes() -> set[tuple[str, str]]:
    for module in pkgutil.iter_modules(web.__path__):  # what autodiscovery would import
        importlib.import_module(f"web.{module.name}")
    return {(route.resource.canonical, route.method.lower())
            for route in app.web.web_app.router.routes()
            if route.method != "HEAD"}  # faust adds HEAD to every view


def test_documented_routes_are_the_registered_routes():
    from web.openapi import SPEC

    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    routes = registered_routes()
    assert routes, "no routes registered"
    assert routes - documented == set(), "routes missing from web/openapi.py"
    assert documented - routes == set(), "documented routes that do not exist"


def test_document_is_well_formed():
    from web.openapi import DOCUMENT, SPEC

    assert orjson.loads(DOCUMENT) == orjson.loads(orjson.dumps(SPEC))
    assert SPEC["openapi"].startswith("3.")
    schemes = set(SPEC["components"]["securitySchemes"])
    schemas = SPEC["components"]["schemas"]
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (path, method)
            for requirement in op["security"]:
                assert set(requirement) <= schemes
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    refs = [r["$ref"].rsplit("/", 1)[1] for r in schemas["Event"]["oneOf"]]
    assert refs == list(SHOP_TYPES) + [ALIAS] and "erase" not in schemas
    alias = schemas[ALIAS]["allOf"]
    assert alias[1]["required"] == ["anonymous_id"]
    assert alias[0]["properties"]["customer_id"]["not"] == {"pattern": "^anon-"}
    purchase = schemas["purchase"]["allOf"]
    assert {"customer_id", "type"} <= set(purchase[0]["required"])
    assert set(purchase[1]["required"]) == {"currency", "items", "order_id", "total"}


def test_reads_document_the_read_your_writes_parameters_and_ingest_its_token():
    from web.openapi import SPEC

    for what in ("activity", "profile", "recommendations"):
        params = SPEC["paths"][f"/v1/customers/{{customer_id}}/{what}"]["get"]["parameters"]
        assert {p["name"] for p in params if p["in"] == "query"} >= {"after", "wait_ms"}
    accepted = SPEC["components"]["schemas"]["Accepted"]["properties"]
    assert set(accepted) == {"accepted", "event_ids", "token"}


def test_limited_routes_document_429_with_retry_after():
    from web.openapi import SPEC

    paths = SPEC["paths"]
    limited = [paths["/v1/events"]["post"]] + [
        paths[f"/v1/customers/{{customer_id}}/{r}"]["get"]
        for r in ("activity", "profile", "recommendations")]
    for op in limited:
        answer = op["responses"]["429"]
        assert "Retry-After" in answer["headers"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/RateLimited")
    limit = SPEC["components"]["schemas"]["RateLimited"]["properties"]["limit"]["enum"]
    assert set(limit) == {"ingest", "read", "publishable"}
