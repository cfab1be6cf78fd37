"""The customers agent's part of aliasing (``app.rules.alias``, README "Aliasing").

At the owner of an anonymous id: an ``alias`` event turns the id's state into a redirect to
the identified customer (its session is deleted, so no abandoned-cart webhook fires for the
anonymous copy of the cart) and hands back the logged events to forward; any later shop
event of a merged id is forwarded instead of applied. The agent sends the forwarded events
to ``events`` keyed by the identified customer, together with the webhook outbox: the
broker has them before the redirect can be written, so a crash in between redelivers the
alias against the old state and forwards the same events (same ids: duplicates there).
"""
from __future__ import annotations

from typing import Optional

from app.observability import metrics
from app.rules import alias
from app.rules.events import ALIAS, SHOP_TYPES
from app.settings import settings
from app.topics import BROWSER_SOURCE, SOURCE_HEADER

CONFLICT = metrics.ALIAS_CONFLICT  # the dead-letter reason
REFUSED = metrics.MERGED_REFUSED  # a browser event for an id merged longer ago than the grace


def from_browser(message) -> bool:
    """Whether the record came in through ``POST /v1/events`` with a publishable key."""
    return any(k == SOURCE_HEADER and v == BROWSER_SOURCE for k, v in (message.headers or ()))


def handle(p, ev: dict, message=None) -> tuple[bool, list, Optional[str]]:
    """``(handled here, events to forward, refusal)`` for one event and the pending state
    ``p`` of its partition key; ``handled`` False: apply the event as usual. A refusal is
    an alias conflict or a browser event refused for a merged id (``alias.follows``)."""
    received = message.timestamp if message is not None else None  # ms, as the rules keep
    if ev["type"] == ALIAS:
        profile, forwards, conflict = alias.on_alias(p.profile, ev, received)
        if profile is not p.profile:
            p.profile, p.dirty_profile = profile, True
            p.session, p.dirty_session = None, True
        return True, forwards, conflict
    if ev["type"] in SHOP_TYPES:
        forwarded = alias.forward(p.profile, ev)
        if forwarded is not None:
            browser = message is not None and from_browser(message)
            if browser and not alias.follows(p.profile, True, received,
                                             int(settings.alias_browser_grace_s * 1000)):
                return True, [], (f"{ev['customer_id']} was merged into a customer; a browser "
                                  "sends as that customer, with its identity hash")
            return True, [forwarded], None
    return False, [], None


def reason(ev: dict) -> str:
    """The dead-letter reason of a refused event."""
    return CONFLICT if ev["type"] == ALIAS else REFUSED


def outcome(ev: dict, conflict: Optional[str]) -> tuple:
    """The events counter's labels: an alias is applied (or dead-lettered on a conflict), a
    forwarded event re-keyed (or dead-lettered when refused)."""
    if conflict:
        return metrics.DEAD_LETTERED, ev["type"], reason(ev)
    return (metrics.APPLIED if ev["type"] == ALIAS else metrics.REKEYED), ev["type"], ""
