"""Which webhooks one applied event fires, and the abandoned-cart command. Pure.

``triggers`` decides from (old/new session, old/new profile, event) which kinds fire;
``on_session_timeout`` decides what the abandoned-cart scan's command does. Time is the
command's ``ts``, never the clock. The delivery side (subscriptions, signing, retries,
record formats) is ``app.webhooks``.
"""
from __future__ import annotations

import uuid
from typing import Optional

from app.rules import profile_state, session_state
from app.rules.events import CURRENT_VERSION, SESSION_TIMEOUT

PURCHASE, CART_UPDATED, CART_ABANDONED = "purchase.completed", "cart.updated", "cart.abandoned"
KINDS = (PURCHASE, CART_UPDATED, CART_ABANDONED)
#: uuid5 namespace of timeout commands' event ids (and of webhook ids, app.webhooks.records).
ID_NAMESPACE = uuid.UUID("0b4f9c52-3f0e-4d7e-a9f2-2a1f0c6d7e51")


def _cart_key(session: Optional[dict]) -> dict:
    lines = session_state.cart_lines(session) if session else {}
    return {pid: (line["quantity"], line["price"]) for pid, line in lines.items()}


def _cart(session: dict) -> dict:
    v = session_state.view(session)
    return {"customer_id": v["customer_id"], "session_id": v["session_id"], "cart": v["cart"],
            "cart_value": v["cart_value"]}


def _abandoned(session: dict, reason: str) -> dict:
    return {**_cart(session), "started_at": session["started_at"],
            "last_event_at": session["last_event_at"], "reason": reason}


def abandonable(session: Optional[dict]) -> bool:
    return (session is not None and session_state.has_open_cart(session)
            and not session.get("abandon_notified"))


def triggered(old_s: Optional[dict], new_s: Optional[dict], old_p: Optional[dict],
             new_p: Optional[dict], event: dict, idle_ms: int) -> list:
    """``[(kind, data)]`` that one applied shop event fires (none for a duplicate)."""
    fired = []
    replaced = old_s is not None and session_state.belongs_to_new_session(old_s, event, idle_ms)
    if replaced and abandonable(old_s):
        fired.append((CART_ABANDONED, _abandoned(old_s, "new_session")))
    if new_s is not None and new_s is not old_s:
        if _cart_key(new_s) != _cart_key(None if replaced else old_s):
            fired.append((CART_UPDATED, _cart(new_s)))
    if (event["type"] == "purchase" and new_p is not None and new_p is not old_p
            and event["order_id"] not in (old_p or {}).get("order_ids", ())):
        p = profile_state.view(new_p)
        order = {k: event.get(k) for k in ("order_id", "items", "total", "currency",
                                           "payment_method", "ts")}
        totals = {k: p[k] for k in ("orders", "total_spent", "currency", "average_order_value",
                                    "spent_by_currency")}
        fired.append((PURCHASE, {"customer_id": event["customer_id"], "order": order,
                                 "profile": totals}))
    return fired


def idle(session: Optional[dict], now_ms: int, idle_ms: int) -> bool:
    return session is not None and now_ms - session["last_event_at"] > idle_ms


def timeout_command(session: dict, now_ms: int) -> dict:
    """The command the abandoned-cart scan puts on ``events`` (deterministic event_id)."""
    seed = f"{session['customer_id']}|{session['session_id']}|{session['last_event_at']}"
    return {"event_id": "timeout-" + uuid.uuid5(ID_NAMESPACE, seed).hex,
            "type": SESSION_TIMEOUT, "customer_id": session["customer_id"],
            "session_id": session["session_id"], "ts": now_ms, "v": CURRENT_VERSION}


def mark_notified(session: dict) -> dict:
    return {**session, "abandon_notified": True}


def on_session_timeout(session: Optional[dict], command: dict, idle_ms: int) -> tuple:
    """``(session, fired)``: the session (marked notified) and the cart.abandoned trigger if it
    is still idle at the command's time with an open cart not yet notified; else unchanged."""
    if not (abandonable(session) and idle(session, command["ts"], idle_ms)):
        return session, []
    return mark_notified(session), [(CART_ABANDONED, _abandoned(session, "idle"))]

