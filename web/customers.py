"""Per-customer reads (``read`` scope), routed to the owning worker.

Views only read tables. Every state answer carries ``as_of``: the event time of
the last event applied to that customer.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time

import orjson
from faust.web import View

from app.main import app
from app.rules import profile_state, session_state
from app.rules.events import ID_RE, erase_command
from app.rules.recommend import recommend
from app.topics import events
from tables.documents import read
from tables.profiles import profiles
from tables.sessions import sessions
from web.auth import require
from web.routing import routed

_ID = re.compile(ID_RE)
log = logging.getLogger(__name__)


def bad_customer_id(view, customer_id: str):
    if len(customer_id) > 128 or not _ID.match(customer_id):
        return view.json({"error": "invalid request", "fields": {"customer_id": [
            "1-128 characters from A-Z a-z 0-9 . _ : @ -"]}}, status=400)
    return None


def ok(view, body: dict):
    """A 200 JSON answer, encoded with orjson (Faust's ``view.json`` uses the stdlib)."""
    return view.bytes(orjson.dumps(body), content_type="application/json")


def not_found(view, customer_id: str):
    return view.json({"error": "not found", "customer_id": customer_id}, status=404)


@app.page("/v1/customers/{customer_id}/activity")
class Activity(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer():
            session = read(sessions, customer_id)
            if session is None:
                return not_found(self, customer_id)
            return ok(self, session_state.view(session))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, sessions, customer_id, answer)


@app.page("/v1/customers/{customer_id}/profile")
class Profile(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer():
            profile = read(profiles, customer_id)
            if profile is None:
                return not_found(self, customer_id)
            return ok(self, profile_state.view(profile))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, profiles, customer_id, answer)


def parse_limit(view, request):
    """``?limit=`` (1-50, default 10): (limit, None) or (None, 400 response)."""
    raw = request.query.get("limit", "10")
    if not (raw.isdigit() and 1 <= int(raw) <= 50):
        return None, view.json({"error": "invalid request",
                                "fields": {"limit": ["an integer from 1 to 50"]}}, status=400)
    return int(raw), None


@app.page("/v1/customers/{customer_id}/recommendations")
class Recommendations(View):
    @require("read")
    async def get(self, request, customer_id):
        limit, bad = parse_limit(self, request)
        if bad:
            return bad

        def answer():
            session, profile = read(sessions, customer_id), read(profiles, customer_id)
            if session is None and profile is None:
                return not_found(self, customer_id)
            return ok(self, recommend(session, profile, limit=limit))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, profiles, customer_id, answer)


@app.page("/v1/customers/{customer_id}")
class Customer(View):
    @require("admin")
    async def delete(self, request, customer_id):
        """Queue an erase command on ``events``: applied in order after earlier events."""
        bad = bad_customer_id(self, customer_id)
        if bad:
            return bad
        command = erase_command(customer_id, int(time.time() * 1000))
        try:
            fut = await events.send(key=customer_id.encode(), value=orjson.dumps(command))
            await asyncio.wait_for(fut, timeout=10)
        except Exception as exc:  # broker down or slow: the caller must retry
            log.warning("erase of %s not queued: %r", customer_id, exc)
            return self.json({"error": "unavailable", "detail": "erase not queued"},
                             status=503, headers={"Retry-After": "1"})
        return self.json({"status": "erase queued", "customer_id": customer_id,
                          "event_id": command["event_id"]}, status=202)
