"""The OpenAPI pieces of the KPI routes (``GET /v1/kpis``): parameters and answer schema,
apart so ``web/openapi.py`` stays small. Data only; ``web.openapi`` puts them in place."""
from __future__ import annotations

OBJ = {"type": "object"}
TIME = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999,
                   "description": "epoch milliseconds"},
                  {"type": "string", "format": "date-time"}]}
KPI_PARAMS = [
    {"name": "window", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["1m", "1d"], "default": "1m"},
     "description": "1m: 1-minute windows (kept 48 h), 1d: 1-day windows (kept 90 days)"},
    {"name": "from", "in": "query", "required": False, "schema": TIME,
     "description": "first window: the one holding this time (default: to - 1 h for 1m, "
                    "to - 30 days for 1d); any span (only kept windows have data)"},
    {"name": "to", "in": "query", "required": False, "schema": TIME,
     "description": "windows starting before this time (default: now)"}]
COUNTS = {name: {"type": "integer"} for name in (
    "events", "sessions", "sessions_with_purchase", "carts_opened", "carts_abandoned", "orders",
    "active_customers")}
KPI_FIGURES = {**OBJ, "properties": {
    **COUNTS,
    "conversion_rate": {"type": "number", "nullable": True},
    "abandonment_rate": {"type": "number", "nullable": True},
    "revenue": {**OBJ, "description": "per ISO 4217 currency", "additionalProperties": {
        **OBJ, "properties": {"orders": {"type": "integer"}, "revenue": {"type": "number"},
                              "revenue_cents": {"type": "integer"},
                              "average_order_value": {"type": "number"}}}}}}
KPIS_SCHEMA = {**OBJ, "properties": {
    "window": {"type": "string"}, "from": {"type": "integer"}, "to": {"type": "integer"},
    "partitions": {"type": "integer"},
    "newest": {"type": "integer", "nullable": True,
               "description": "start of the newest window with data (any time)"},
    "totals": KPI_FIGURES,
    "series": {"type": "array", "items": {"allOf": [
        KPI_FIGURES, {**OBJ, "properties": {"start": {"type": "integer"}}}]}}}}
