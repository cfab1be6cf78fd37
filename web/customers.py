"""Per-customer reads (``read`` scope), routed to the owning worker.

Views only read tables. Every state answer carries ``as_of``: the event time of
the last event applied to that customer.
"""
from __future__ import annotations

import re

from faust.web import View

from app import profile_state, session_state
from app.events import ID_RE
from app.main import app
from app.recommend import recommend
from tables.profiles import profiles
from tables.sessions import sessions
from web.auth import require
from web.routing import routed

_ID = re.compile(ID_RE)


def bad_customer_id(view, customer_id: str):
    if len(customer_id) > 128 or not _ID.match(customer_id):
        return view.json({"error": "invalid request", "fields": {"customer_id": [
            "1-128 characters from A-Z a-z 0-9 . _ : @ -"]}}, status=400)
    return None


def not_found(view, customer_id: str):
    return view.json({"error": "not found", "customer_id": customer_id}, status=404)


@app.page("/v1/customers/{customer_id}/activity")
class Activity(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer():
            session = sessions.get(customer_id)
            if session is None:
                return not_found(self, customer_id)
            return self.json(session_state.view(session))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, sessions, customer_id, answer)


@app.page("/v1/customers/{customer_id}/profile")
class Profile(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer():
            profile = profiles.get(customer_id)
            if profile is None:
                return not_found(self, customer_id)
            return self.json(profile_state.view(profile))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, profiles, customer_id, answer)


@app.page("/v1/customers/{customer_id}/recommendations")
class Recommendations(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer():
            session, profile = sessions.get(customer_id), profiles.get(customer_id)
            if session is None and profile is None:
                return not_found(self, customer_id)
            return self.json(recommend(session, profile))

        return bad_customer_id(self, customer_id) or await routed(
            self, request, profiles, customer_id, answer)
