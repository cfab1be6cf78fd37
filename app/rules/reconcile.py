"""Reconciliation, pure: re-fold a customer's events, compare with the stored documents, and
the ``reconcile`` command that repairs a document through the customers agent.

- ``step(session, profile, event, idle_ms)``: what the customers agent does with one valid
  event of the customer (``agents.customer_state.apply_event``) minus webhooks and the
  redelivery-by-position check (a re-fold reads each offset once): ``erase`` empties both,
  ``session_timeout`` may mark the session notified, shop events go through the session
  rules, then the profile rules with the new session.
- ``reconcile`` commands are no-ops in the re-fold: a command replaces a document with the
  re-fold of the events before it, and only while the document is still the one the tool
  saw (``digest``, compare-and-set); where it was applied, the re-fold already is that
  state; where the agent skipped it, the live state is still wrong and the next run must
  say so.
- ``differing(live, expected)``: the top-level fields whose values differ, ``_pos`` (the
  agent's record of the last position folded in, which depends on batching) ignored.
- ``command(...)`` builds the command, ``repair(...)`` is the agent's side of it.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import orjson

from app.rules import profile_state, session_state, triggers
from app.rules.events import CURRENT_VERSION, ERASE, RECONCILE, SESSION_TIMEOUT, STATE_TABLES

#: The agent's position stamp in each stored document (``agents.customer_state.POS``).
POS = "_pos"
#: What a differing whole document is reported as (present on one side only).
DOCUMENT = "(document)"


def step(session: Optional[dict], profile: Optional[dict], event: dict,
         idle_ms: int) -> tuple[Optional[dict], Optional[dict]]:
    kind = event["type"]
    if kind == ERASE:
        return None, None
    if kind == SESSION_TIMEOUT:
        return triggers.on_session_timeout(session, event, idle_ms)[0], profile
    if kind == RECONCILE:
        return session, profile
    new_session = session_state.apply_to_session(session, event, idle_ms)
    return new_session, profile_state.apply_to_profile(profile, event, new_session, idle_ms)


def normalized(doc: Optional[dict]) -> Optional[dict]:
    """``doc`` as it reads back from a table (JSON types only), without ``_pos``."""
    if doc is None:
        return None
    return {k: v for k, v in orjson.loads(orjson.dumps(doc)).items() if k != POS}


def digest(doc: Optional[dict]) -> Optional[str]:
    """A short hash of a stored document's content (``_pos`` included), None if absent."""
    if doc is None:
        return None
    return hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS),
                           digest_size=16).hexdigest()


def differing(live: Optional[dict], expected: Optional[dict]) -> dict:
    """``{field: (live value, expected value)}``; ``DOCUMENT`` if one side is absent."""
    if live is None or expected is None:
        if live is expected:
            return {}
        return {DOCUMENT: ("absent" if live is None else "present",
                           "absent" if expected is None else "present")}
    live, expected = normalized(live), normalized(expected)
    return {k: (live.get(k), expected.get(k)) for k in sorted(live.keys() | expected.keys())
            if live.get(k) != expected.get(k)}


def command(customer_id: str, repairs: dict, ts_ms: int, event_id: str) -> dict:
    """The ``reconcile`` command: ``repairs`` = ``{table: (document seen, expected)}``."""
    return {"event_id": event_id, "type": RECONCILE, "customer_id": customer_id,
            "ts": ts_ms, "v": CURRENT_VERSION,
            "tables": {name: {"seen": digest(seen), "state": normalized(expected)}
                       for name, (seen, expected) in repairs.items()}}


def repair(session: Optional[dict], profile: Optional[dict], cmd: dict) -> tuple:
    """``(session, profile, replaced table names)``: each named document is replaced by
    the command's state only if its digest is still the one the tool saw (and the state is
    this customer's: a document of another would break every later event)."""
    docs = dict(zip(STATE_TABLES, (session, profile), strict=True))
    replaced = []
    for name, spec in cmd["tables"].items():
        state = spec["state"]
        if state is not None and state.get("customer_id") != cmd["customer_id"]:
            continue
        if digest(docs[name]) == spec["seen"]:
            docs[name] = spec["state"]
            replaced.append(name)
    return docs["sessions"], docs["profiles"], replaced
