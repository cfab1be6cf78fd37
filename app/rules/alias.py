"""Alias: merge an anonymous id (``anon-...``, made up by the browser SDK) into an identified
customer. Pure: the customers agent (``agents/aliases.py``) calls these and does the I/O.

The two ids live on different partitions, so the merge is a re-key, not a join of states:

- While an id is anonymous, its profile keeps a log of the events applied to it
  (``record``; at most ``MAX_LOG``, the oldest dropped; anonymous ids only).
- ``alias {customer_id: C, anonymous_id: A}`` is keyed by A, so the owner of A's state
  handles it (``on_alias``): every logged event is forwarded to C's partition with
  ``customer_id`` C and its own ``event_id`` (``retarget``), and A's state becomes a redirect
  (``{"customer_id": A, "merged_into": C}``; its session and log are dropped).
- Any later event of A finds the redirect and is forwarded to C the same way (``forward``).

So C's state is C's events plus A's, applied by the ordinary rules: the merge is exactly as
order independent and idempotent as they are (every profile figure but ``sessions`` is
independent of arrival order; a redelivered event id is a no-op). Wherever the alias falls
among A's events, every one of them reaches C once: before it through the log, after it
through the redirect. A repeated alias to C is a no-op (the redirect is there); an alias of
A to another customer after A went to C is refused (``on_alias`` names the conflict): the
first merge wins.

A merged id is no key to the customer. An anonymous id needs no identity hash (nobody has
signed in), so a browser, or anyone who learned the id, can send events for it with the
public page key. Once A is merged into C, such events would reach C's state and fire webhooks
about C. So events that came in with a publishable key (``browser``) follow the redirect only
within ``grace_ms`` of the merge, for the page views and clicks already in flight when the
customer signed in; later ones are refused (``follows``) and dead-lettered. Server-side
events (server keys, or written to ``events`` directly) always follow. The merge time is the
broker's timestamp of the alias record when known (``merged_received``), else the alias's
own ``ts``; the browser event's time is its broker timestamp (set by Persona's producer, not
by the client).
"""
from __future__ import annotations

from typing import Optional

from app.rules.events import ANON_PREFIX

MAX_LOG = 200
LOG = "_log"
MERGED_INTO = "merged_into"
#: Dead-letter reason of a browser event refused for a merged anonymous id.
MERGED_REFUSED = "merged anonymous id"


def is_anonymous(customer_id: str) -> bool:
    return customer_id.startswith(ANON_PREFIX)


def merged_into(profile: Optional[dict]) -> Optional[str]:
    """The customer this (anonymous) profile was merged into, or None."""
    return profile.get(MERGED_INTO) if profile else None


def record(profile: dict, event: dict) -> dict:
    """``profile`` (a new dict) with ``event`` in its log, for an anonymous customer; the
    same profile for an identified one, or when the event is logged already."""
    if not is_anonymous(profile["customer_id"]):
        return profile
    log = profile.get(LOG) or []
    if any(e["event_id"] == event["event_id"] for e in log):
        return profile
    return {**profile, LOG: (log + [event])[-MAX_LOG:]}


def retarget(event: dict, customer_id: str) -> dict:
    """The event as the identified customer's: same event id (so a second forward of it is
    a duplicate there), same time and fields."""
    return {**event, "customer_id": customer_id}


def redirect(anonymous_id: str, customer_id: str, alias: dict,
             received_ms: Optional[int] = None) -> dict:
    out = {"customer_id": anonymous_id, MERGED_INTO: customer_id,
           "merged_at": alias["ts"], "alias_event_id": alias["event_id"]}
    if received_ms is not None:
        out["merged_received"] = received_ms
    return out


def follows(profile: dict, browser: bool, received_ms: int, grace_ms: int) -> bool:
    """Whether an event for the merged id ``profile`` may follow it to the customer: always
    from the server side; from a browser only within ``grace_ms`` after the merge."""
    if not browser:
        return True
    merged = profile.get("merged_received", profile.get("merged_at", 0))
    return received_ms <= merged + grace_ms


def on_alias(profile: Optional[dict], alias: dict,
             received_ms: Optional[int] = None) -> tuple[Optional[dict], list, Optional[str]]:
    """``(profile, events to forward, conflict)`` for an alias event at the anonymous id's
    owner: the redirect and the retargeted log; the same profile and nothing for a repeated
    alias; a conflict message (nothing else changes) if the id went to another customer."""
    target, anonymous = alias["customer_id"], alias["anonymous_id"]
    current = merged_into(profile)
    if current == target:
        return profile, [], None
    if current is not None:
        return profile, [], f"{anonymous} was merged into another customer already"
    events = [retarget(e, target) for e in (profile or {}).get(LOG) or []]
    return redirect(anonymous, target, alias, received_ms), events, None


def forward(profile: Optional[dict], event: dict) -> Optional[dict]:
    """The event retargeted to the customer a merged anonymous id now belongs to, or None
    (not merged: apply it here)."""
    target = merged_into(profile)
    return retarget(event, target) if target is not None else None
