"""app/rules/dedupe.py: compact remembered ids keep the rules' idempotence, legacy states too."""
from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from app.rules import dedupe
from app.rules import profile_state as ps
from app.rules import session_state as ss

T0 = 1_700_000_000_000


def ev(i: int, **kw) -> dict:
    return {"event_id": f"00000000-0000-4000-8000-{i:012d}", "type": "product_view",
            "customer_id": "c1", "session_id": None, "ts": T0 + i * 1000, "v": 1,
            "product_id": f"p{i}", "category": "shoes", "price": 10.0, **kw}


def fold(events, session=None, profile=None):
    for e in events:
        session = ss.apply_to_session(session, e, 1800_000)
        profile = ps.apply_to_profile(profile, e, session)
    return session, profile


def test_tag_is_short_stable_and_distinct():
    tags = {dedupe.tag(ev(i)["event_id"]) for i in range(10_000)}
    assert len(tags) == 10_000
    assert all(len(t) == 11 for t in tags)
    assert dedupe.tag("abc") == dedupe.tag("abc") != dedupe.tag("abd")


@given(st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_a_redelivered_event_changes_nothing(order):
    events = [ev(i) for i in order]
    session, profile = fold(events)
    again_s, again_p = fold(events, session, profile)
    assert (again_s, again_p) == (session, profile)
    assert profile["counts"]["product_view"] == len(set(order))


def test_values_are_much_smaller_than_with_the_ids():
    _, profile = fold([ev(i) for i in range(ps.MAX_IDS)])
    legacy = {**{k: v for k, v in profile.items() if k != dedupe.KEY},
              dedupe.LEGACY: [ev(i)["event_id"] for i in range(ps.MAX_IDS)]}
    assert len(orjson.dumps(profile)) < 0.8 * len(orjson.dumps(legacy))


def test_a_legacy_state_still_tells_duplicates_and_is_converted_when_it_changes():
    session, profile = fold([ev(i) for i in range(5)])
    legacy_s = {**{k: v for k, v in session.items() if k != dedupe.KEY},
                dedupe.LEGACY: [ev(i)["event_id"] for i in range(5)]}
    legacy_p = {**{k: v for k, v in profile.items() if k != dedupe.KEY},
                dedupe.LEGACY: [ev(i)["event_id"] for i in range(5)]}
    # a redelivery of an old event against the legacy state: nothing changes
    assert ss.apply_to_session(legacy_s, ev(3), 1800_000) is legacy_s
    assert ps.apply_to_profile(legacy_p, ev(3), legacy_s) is legacy_p
    # a new event converts: same result as if the state had been written with tags
    new_s = ss.apply_to_session(legacy_s, ev(5), 1800_000)
    new_p = ps.apply_to_profile(legacy_p, ev(5), new_s)
    want_s, want_p = fold([ev(5)], session, profile)
    assert (new_s, new_p) == (want_s, want_p)
    assert dedupe.LEGACY not in new_p and dedupe.seen(new_p, ev(0)["event_id"])


def test_window_is_bounded():
    _, profile = fold([ev(i) for i in range(ps.MAX_IDS + 5)])
    assert dedupe.count(profile) == ps.MAX_IDS
    assert not dedupe.seen(profile, ev(0)["event_id"])
    assert dedupe.seen(profile, ev(ps.MAX_IDS + 4)["event_id"])


def test_a_state_with_a_list_of_tags_reads_and_converts():
    """The form before the packed string: a list of tags."""
    session, profile = fold([ev(i) for i in range(5)])
    listed_s = {**session, dedupe.KEY: [dedupe.tag(ev(i)["event_id"]) for i in range(5)]}
    listed_p = {**profile, dedupe.KEY: [dedupe.tag(ev(i)["event_id"]) for i in range(5)]}
    assert dedupe.count(listed_p) == 5
    assert ss.apply_to_session(listed_s, ev(2), 1800_000) is listed_s
    assert ps.apply_to_profile(listed_p, ev(2), listed_s) is listed_p
    new_s = ss.apply_to_session(listed_s, ev(5), 1800_000)
    new_p = ps.apply_to_profile(listed_p, ev(5), new_s)
    assert (new_s, new_p) == fold([ev(5)], session, profile)
    assert isinstance(new_p[dedupe.KEY], str) and dedupe.count(new_p) == 6


def test_only_whole_tags_match():
    """A string made of the end of one tag and the start of the next is not remembered."""
    state = {}
    for i in range(3):
        dedupe.remember(state, dict(state), ev(i)["event_id"], 10)
    packed = state[dedupe.KEY]
    assert dedupe.count(state) == 3 and len(packed) == 3 * dedupe.WIDTH
    spanning = packed[5:5 + dedupe.WIDTH]
    assert not dedupe._holds(packed, spanning)
    assert dedupe._holds(packed + spanning, spanning)  # found again at a tag boundary
    assert all(dedupe.seen(state, ev(i)["event_id"]) for i in range(3))
    assert not dedupe.seen(state, ev(3)["event_id"])
