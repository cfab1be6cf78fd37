"""The alias rule (``app.rules.alias``): merging an anonymous id into an identified customer.

Two partitions are simulated with the pure rules as the customers agent drives them
(``agents/aliases.py``): the anonymous id's owner takes the anonymous events and the alias in
any order (the alias possibly repeated) and forwards; the identified customer's owner takes
its own events interleaved in any way with the forwarded ones. The identified profile must
equal the fold of both customers' events (the order-independent part, as in
``tests/unit/test_properties.py``), whatever the order, and a repeated alias changes nothing.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth.identity import browser_refusal
from app.rules import alias
from app.rules import profile_state as ps
from app.rules import session_state as ss
from app.rules.events import ALIAS, InvalidEvent, key_of, validate_dict
from tests.unit.test_properties import IDLE, SETTINGS, T0, fold, invariant_part, one_event

ANON, CUST = "anon-3f2a", "cust-1"


def alias_event(event_id="al-1", customer=CUST, anonymous=ANON, ts=T0) -> dict:
    return validate_dict({"event_id": event_id, "type": ALIAS, "customer_id": customer,
                          "anonymous_id": anonymous, "ts": ts})


class Partition:
    """One customer's state at its owner, driven like ``agents.customers`` drives the rules."""

    def __init__(self):
        self.session = self.profile = None
        self.forwarded: list = []
        self.conflicts: list = []

    def take(self, e: dict) -> None:
        if e["type"] == ALIAS:
            profile, forwards, conflict = alias.on_alias(self.profile, e)
            if profile is not self.profile:
                self.profile, self.session = profile, None
            self.forwarded += forwards
            if conflict:
                self.conflicts.append(conflict)
            return
        forwarded = alias.forward(self.profile, e)
        if forwarded is not None:
            self.forwarded.append(forwarded)
            return
        self.session = ss.apply_to_session(self.session, e, IDLE)
        new = ps.apply_to_profile(self.profile, e, self.session, IDLE)
        self.profile = alias.record(new, e) if new is not self.profile else new


@st.composite
def scenario(draw):
    n_anon, n_cust = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    # one_event's order ids follow its index: distinct across the two customers
    anon = [{**draw(one_event(i)), "customer_id": ANON} for i in range(n_anon)]
    cust = [draw(one_event(100 + i)) for i in range(n_cust)]
    copies = draw(st.integers(1, 3))  # the alias, possibly repeated
    stream_a = draw(st.permutations(anon + [alias_event()] * copies))
    picks = draw(st.lists(st.booleans(), min_size=60, max_size=60))
    return anon, cust, stream_a, picks


def interleave(own: list, forwarded: list, picks: list) -> list:
    """``own`` and ``forwarded`` merged, each keeping its order (one Kafka partition)."""
    out, i, j = [], 0, 0
    for pick in picks + [True] * (len(own) + len(forwarded)):
        if pick and i < len(own):
            out.append(own[i])
            i += 1
        elif j < len(forwarded):
            out.append(forwarded[j])
            j += 1
        elif i < len(own):
            out.append(own[i])
            i += 1
    return out


@SETTINGS
@given(scenario())
def test_merge_is_order_independent_and_idempotent(case):
    anon, cust, stream_a, picks = case
    a = Partition()
    for e in stream_a:
        a.take(e)
    assert a.conflicts == []
    assert alias.merged_into(a.profile) == CUST and a.session is None
    c = Partition()
    for e in interleave(cust, a.forwarded, picks):
        c.take(e)
    expected = fold(sorted(cust + [alias.retarget(e, CUST) for e in anon],
                           key=lambda e: (e["ts"], e["event_id"])))[1]
    if expected is None:
        assert c.profile is None
        return
    assert invariant_part(c.profile) == invariant_part(expected)
    assert c.profile["customer_id"] == CUST and alias.LOG not in c.profile
    # Forwarding the same events again (a redelivered alias after a crash) changes nothing.
    before = invariant_part(c.profile)
    for e in a.forwarded:
        c.take(e)
    assert invariant_part(c.profile) == before


def test_log_is_bounded_deduplicated_and_only_for_anonymous_ids():
    p = Partition()
    events = [{**e, "customer_id": ANON} for e in
              (validate_dict({"event_id": f"v{i}", "type": "product_view", "customer_id": ANON,
                              "product_id": "p1", "ts": T0 + i}) for i in range(alias.MAX_LOG + 5))]
    for e in events + events[-3:]:
        p.take(e)
    log = p.profile[alias.LOG]
    assert [e["event_id"] for e in log] == [e["event_id"] for e in events[-alias.MAX_LOG:]]
    e = {**events[0], "customer_id": CUST}
    identified = ps.apply_to_profile(None, e, ss.apply_to_session(None, e, IDLE))
    assert alias.record(identified, e) is identified


def test_alias_of_an_unknown_id_redirects_its_later_events():
    a = Partition()
    a.take(alias_event())
    assert a.forwarded == [] and alias.merged_into(a.profile) == CUST
    view = validate_dict({"event_id": "late", "type": "product_view", "customer_id": ANON,
                          "product_id": "p9", "ts": T0})
    a.take(view)
    assert a.forwarded == [{**view, "customer_id": CUST}]


def test_a_second_customer_is_a_conflict_and_changes_nothing():
    a = Partition()
    a.take(alias_event())
    redirect = a.profile
    a.take(alias_event("al-2", customer="cust-2"))
    assert a.profile is redirect and alias.merged_into(a.profile) == CUST
    assert a.conflicts and "another customer" in a.conflicts[0]


@pytest.mark.parametrize(("fields", "field"), [
    ({"customer_id": "anon-x", "anonymous_id": ANON}, "customer_id"),
    ({"customer_id": CUST, "anonymous_id": "cust-2"}, "anonymous_id"),
    ({"customer_id": CUST}, "anonymous_id"),
])
def test_alias_event_validation(fields, field):
    with pytest.raises(InvalidEvent) as exc:
        validate_dict({"event_id": "x", "type": ALIAS, "ts": T0, **fields})
    assert field in exc.value.errors


def test_alias_is_keyed_by_the_anonymous_id_and_refused_to_publishable_keys():
    e = alias_event()
    assert key_of(e) == ANON and key_of({**e, "type": "product_view"}) == CUST
    refusal = browser_refusal([e], frozenset({"product_view", "cart_add"}), b"", None)
    assert refusal["error"] == "forbidden event types"
    assert refusal["items"] == [{"index": 0, "type": ALIAS}]


def test_browser_events_follow_a_merge_only_within_the_grace():
    alias_ev = {"event_id": "a1", "type": "alias", "customer_id": "c", "anonymous_id": "anon-1",
                "ts": 1_000}
    merged, _, _ = alias.on_alias({"customer_id": "anon-1"}, alias_ev, received_ms=50_000)
    assert merged["merged_received"] == 50_000
    assert alias.follows(merged, True, 50_000 + 60_000, 60_000)
    assert not alias.follows(merged, True, 50_000 + 60_001, 60_000)
    assert alias.follows(merged, False, 10**12, 60_000)  # the server side always may
    # A redirect written before the broker time was kept: the alias's own ts counts.
    old, _, _ = alias.on_alias({"customer_id": "anon-1"}, alias_ev)
    assert "merged_received" not in old
    assert alias.follows(old, True, 1_000 + 5, 10) and not alias.follows(old, True, 1_011, 10)
