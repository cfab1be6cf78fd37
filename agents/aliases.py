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

from app import metrics
from app.rules import alias
from app.rules.events import ALIAS, SHOP_TYPES

CONFLICT = metrics.ALIAS_CONFLICT  # the dead-letter reason


def handle(p, ev: dict) -> tuple[bool, list, Optional[str]]:
    """``(handled here, events to forward, conflict)`` for one event and the pending state
    ``p`` of its partition key; ``handled`` False: apply the event as usual."""
    if ev["type"] == ALIAS:
        profile, forwards, conflict = alias.on_alias(p.profile, ev)
        if profile is not p.profile:
            p.profile, p.dirty_profile = profile, True
            p.session, p.dirty_session = None, True
        return True, forwards, conflict
    if ev["type"] in SHOP_TYPES:
        forwarded = alias.forward(p.profile, ev)
        if forwarded is not None:
            return True, [forwarded], None
    return False, [], None


def outcome(ev: dict, conflict: Optional[str]) -> tuple:
    """The events counter's labels: an alias is applied (or dead-lettered on a conflict), a
    forwarded event re-keyed."""
    if conflict:
        return metrics.DEAD_LETTERED, ALIAS, CONFLICT
    return (metrics.APPLIED if ev["type"] == ALIAS else metrics.REKEYED), ev["type"], ""
