"""Expected state computed by the pure rules alone, to compare with the workers' answers."""
from __future__ import annotations

from app.rules import profile_state, session_state
from app.rules.events import validate_dict
from app.settings import settings


def fold(events: list[dict], idle_ms: int = settings.session_idle_ms) -> dict:
    """customer_id -> (session, profile) after applying events in the given order."""
    state: dict[str, tuple] = {}
    for raw in events:
        ev = validate_dict(raw)
        session, profile = state.get(ev["customer_id"], (None, None))
        session = session_state.apply_to_session(session, ev, idle_ms)
        state[ev["customer_id"]] = (session, profile_state.apply_to_profile(profile, ev, session,
                                                                            idle_ms))
    return state
