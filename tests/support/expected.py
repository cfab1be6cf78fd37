"""Expected state computed by the pure rules alone, to compare with the workers' answers."""
from __future__ import annotations

import orjson

from app.rules import dedupe, profile_state, session_state, window_kpis
from app.rules.events import validate_dict
from app.settings import settings


def steps(events: list[dict], idle_ms: int = settings.session_idle_ms):
    """``(customer_id, (session, profile))`` after each event, applied in the given order."""
    state: dict[str, tuple] = {}
    for raw in events:
        ev = validate_dict(raw)
        session, profile = state.get(ev["customer_id"], (None, None))
        session = session_state.apply_to_session(session, ev, idle_ms)
        state[ev["customer_id"]] = (session, profile_state.apply_to_profile(profile, ev, session,
                                                                            idle_ms))
        yield ev["customer_id"], state[ev["customer_id"]]


def fold(events: list[dict], idle_ms: int = settings.session_idle_ms) -> dict:
    """customer_id -> (session, profile) after applying events in the given order."""
    return dict(steps(events, idle_ms))


def prefix_views(events: list[dict], idle_ms: int = settings.session_idle_ms) -> dict:
    """customer_id -> the profile answer (canonical JSON bytes) after each of its events, in
    order: a read while events are applied may show any of the first n, where n counts the
    customer's events sent so far; the last one is the final answer."""
    out: dict[str, list[bytes]] = {}
    for cid, (_, profile) in steps(events, idle_ms):
        out.setdefault(cid, []).append(
            orjson.dumps(profile_state.view(profile), option=orjson.OPT_SORT_KEYS))
    return out


def kpi_applied(events: list[dict], partition_of=lambda cid: 0,
                idle_ms: int = settings.session_idle_ms) -> list[tuple]:
    """``(partition, ts, contribution)`` of every event the customers agent applies (a
    repeated ``event_id`` is a duplicate and adds nothing), in the given order: fed to
    ``app.rules.window_kpis.fold_rows`` it is the windowed-KPI oracle."""
    state: dict[str, tuple] = {}
    out = []
    for raw in events:
        ev = validate_dict(raw)
        cid = ev["customer_id"]
        session, profile = state.get(cid, (None, None))
        duplicate = profile is not None and dedupe.seen(profile, ev["event_id"])
        new_session = session_state.apply_to_session(session, ev, idle_ms)
        new_profile = profile_state.apply_to_profile(profile, ev, new_session, idle_ms)
        state[cid] = (new_session, new_profile)
        if not duplicate:
            out.append((partition_of(cid), ev["ts"],
                        window_kpis.contribution(session, new_session, profile, new_profile, ev)))
    return out
