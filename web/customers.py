"""Per-customer reads (``read`` scope): activity, profile, recommendations.

Each read is routed to the worker that owns the customer's partition (``web.routing``)
and only reads the tables there. Every state answer carries ``as_of``: the event time of
the last event applied to that customer. ``?after=<token>`` (from ``POST /v1/events``)
makes the owner answer only once it has applied that write (``web.positions``).
An anonymous id merged into a customer (``app.rules.alias``) is 404 with ``merged_into``.
"""
from __future__ import annotations

from app.kafka.webview import View
from app.main import app
from app.rules import alias, profile_state, session_state
from app.rules.recommend import recommend
from tables.documents import source, value_of
from tables.profiles import profiles
from tables.sessions import sessions
from web.auth import require
from web.positions import wanted
from web.responses import bad_customer_id, not_found, ok_of, reused
from web.routing import routed


async def routed_read(view, request, table, customer_id: str, answer):
    """The id and ``?after=`` checks (400s), then the read at the owner."""
    bad = bad_customer_id(view, customer_id)
    if bad is not None:
        return bad
    want, bad = wanted(view, request, customer_id)
    if bad is not None:
        return bad
    return await routed(view, request, table, customer_id, answer, want)


@app.page("/v1/customers/{customer_id}/activity")
class Activity(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer(partition):
            key, sources = ("activity", customer_id), (source(sessions, customer_id, partition),)
            hit = reused(self, request, key, sources)
            if hit is not None:
                return hit
            session = value_of(sources[0])
            if session is None:
                return not_found(self, customer_id)
            return ok_of(self, request, key, sources, lambda: session_state.view(session))

        return await routed_read(self, request, sessions, customer_id, answer)


@app.page("/v1/customers/{customer_id}/profile")
class Profile(View):
    @require("read")
    async def get(self, request, customer_id):
        def answer(partition):
            key, sources = ("profile", customer_id), (source(profiles, customer_id, partition),)
            hit = reused(self, request, key, sources)
            if hit is not None:
                return hit
            profile = value_of(sources[0])
            if profile is None or alias.merged_into(profile):
                return not_found(self, customer_id, alias.merged_into(profile))
            return ok_of(self, request, key, sources, lambda: profile_state.view(profile))

        return await routed_read(self, request, profiles, customer_id, answer)


def parse_limit(view, request):
    """``?limit=`` (1-50, default 10): (limit, None) or (None, 400 response)."""
    raw = request.query.get("limit", "10")
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 50):
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

        def answer(partition):
            key = ("recommendations", customer_id, limit)
            sources = (source(sessions, customer_id, partition),
                       source(profiles, customer_id, partition))
            hit = reused(self, request, key, sources)
            if hit is not None:
                return hit
            session, profile = map(value_of, sources)
            merged = alias.merged_into(profile)
            if session is None and (profile is None or merged):
                return not_found(self, customer_id, merged)
            return ok_of(self, request, key, sources,
                         lambda: recommend(session, profile, limit=limit))

        return await routed_read(self, request, profiles, customer_id, answer)
