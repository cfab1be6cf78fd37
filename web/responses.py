"""JSON answers shared by the views: 200 via orjson, 404, and the customer-id check."""
from __future__ import annotations

import orjson

from app.rules.events import ID_HINT, valid_id


def bad_customer_id(view, customer_id: str):
    """A 400 with the field error if ``customer_id`` breaks the id rule, else None."""
    if not valid_id(customer_id):
        return view.json({"error": "invalid request", "fields": {"customer_id": [ID_HINT]}},
                         status=400)
    return None


def ok(view, body: dict):
    """A 200 JSON answer, encoded with orjson (Faust's ``view.json`` uses the stdlib)."""
    return view.bytes(orjson.dumps(body), content_type="application/json")


def not_found(view, customer_id: str):
    return view.json({"error": "not found", "customer_id": customer_id}, status=404)
