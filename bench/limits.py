"""In-process limits over the same events, no Kafka and no Faust.

- ``parse``: ``app.rules.events.parse`` (orjson decode + marshmallow validation), events/s.
- ``state``: ``session_state.apply_to_session`` + ``profile_state.apply_to_profile`` over the validated
  events into plain dicts: the limit the end-to-end figure is compared with.
- ``state_json``: the same plus one orjson encode of each changed value (what a
  changelog write needs at least), and counts of changed values (changelog records
  the naive agent writes per event).
"""
from __future__ import annotations

import statistics
import time

import orjson

from app.rules import profile_state, session_state
from app.rules.events import parse

BATCH = 500  # events per batch for the "one write per customer per batch" estimate


def _apply_all(events: list[dict], idle_ms: int, encode: bool) -> tuple[float, dict]:
    sessions: dict = {}
    profiles: dict = {}
    writes = 0
    changed: list[tuple[str, bool, bool]] = []
    t0 = time.perf_counter()
    for ev in events:
        cid = ev["customer_id"]
        old_s = sessions.get(cid)
        s = session_state.apply_to_session(old_s, ev, idle_ms)
        old_p = profiles.get(cid)
        p = profile_state.apply_to_profile(old_p, ev, s, idle_ms)
        if encode:
            changed.append((cid, s is not old_s, p is not old_p))
        if s is not old_s:
            sessions[cid] = s
            writes += 1
            if encode:
                orjson.dumps(s)
        if p is not old_p:
            profiles[cid] = p
            writes += 1
            if encode:
                orjson.dumps(p)
    elapsed = time.perf_counter() - t0
    return len(events) / elapsed, {"writes": writes, "profiles": profiles, "sessions": sessions,
                                   "changed": changed}


def batched_writes(changed: list[tuple[str, bool, bool]], batch: int) -> int:
    """Table writes if each changed customer's state is written once per batch."""
    total = 0
    for i in range(0, len(changed), batch):
        chunk = changed[i:i + batch]
        total += len({c for c, s, _ in chunk if s}) + len({c for c, _, p in chunk if p})
    return total


def measure(records: list[tuple[bytes, bytes]], idle_ms: int, repeat: int) -> dict:
    t0 = time.perf_counter()
    events = [parse(value) for _, value in records]
    parse_eps = len(records) / (time.perf_counter() - t0)
    runs = [_apply_all(events, idle_ms, encode=False)[0] for _ in range(repeat)]
    json_eps, info = _apply_all(events, idle_ms, encode=True)
    profiles, sessions = info["profiles"], info["sessions"]
    sizes_p = [len(orjson.dumps(v)) for v in profiles.values()]
    sizes_s = [len(orjson.dumps(v)) for v in sessions.values()]
    return {
        "parse_eps": parse_eps,
        "state_eps": statistics.median(runs),
        "state_eps_runs": [round(r) for r in runs],
        "state_json_eps": json_eps,
        "writes_per_event": info["writes"] / len(events),
        "min_writes_per_event": batched_writes(info["changed"], BATCH) / len(events),
        "batch": BATCH,
        "profile_bytes_mean": statistics.mean(sizes_p),
        "session_bytes_mean": statistics.mean(sizes_s),
        "profile_bytes_max": max(sizes_p),
        # A median-sized profile view: the body the bare-aiohttp limit serves.
        "sample_view": profile_state.view(
            sorted(profiles.values(), key=lambda p: len(orjson.dumps(p)))[len(profiles) // 2]),
    }
