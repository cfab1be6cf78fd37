"""Reconciliation's pure side (app/rules/reconcile.py) and the comparison of persona-reconcile
(app/cli/reconcile.py: fold at each document's cut, mismatches, in flight, retention)."""
from __future__ import annotations

import pytest

from app.cli.logread import partition_for
from app.cli.reconcile import compare, fold_at
from app.rules import reconcile
from app.rules.events import INTERNAL_TYPES, RECONCILE, SHOP_TYPES, InvalidEvent, validate_dict
from tests.support.builders import IDLE, T0, ev


def views(n, cid="c1"):
    return [ev("product_view", T0 + i * 1000, product_id=f"p{i}", category="shoes",
               customer_id=cid) for i in range(n)]


def fold(events):
    session = profile = None
    for e in events:
        session, profile = reconcile.step(session, profile, e, IDLE)
    return session, profile


def test_step_is_the_agents_fold_erase_timeout_and_reconcile():
    session, profile = fold(views(3))
    assert profile["counts"] == {"product_view": 3} and session["events"] == 3
    assert fold(views(3) + [ev("erase", T0 + 9000)]) == (None, None)
    cart = [ev("cart_add", T0, product_id="p1", quantity=1, price=2.0)]
    timeout = ev("session_timeout", T0 + IDLE + 5000)
    session, _ = fold(cart + [timeout])
    assert session["abandon_notified"] is True
    command = reconcile.command("c1", {"profiles": (None, {"x": 1})}, T0, "r1")
    two = views(2)
    assert fold(two + [command]) == fold(two)  # a no-op in the re-fold


def test_differing_reports_fields_and_ignores_pos():
    _, profile = fold(views(3))
    live = {**profile, reconcile.POS: [0, 41], "counts": {"product_view": 99}}
    assert reconcile.differing(live, profile) == {
        "counts": ({"product_view": 99}, {"product_view": 3})}
    assert reconcile.differing({**profile, reconcile.POS: [1, 2]}, profile) == {}
    assert reconcile.differing(None, profile) == {reconcile.DOCUMENT: ("absent", "present")}
    assert reconcile.differing(None, None) == {}


def test_digest_is_content_not_key_order():
    assert reconcile.digest({"a": 1, "b": [1.5]}) == reconcile.digest({"b": [1.5], "a": 1})
    assert reconcile.digest({"a": 1}) != reconcile.digest({"a": 2})
    assert reconcile.digest(None) is None


def test_repair_is_compare_and_set():
    session, profile = fold(views(2))
    seen = {**profile, "counts": {"product_view": 7}}
    cmd = validate_dict(reconcile.command("c1", {"profiles": (seen, profile),
                                                 "sessions": (session, None)}, T0, "r1"))
    s, p, replaced = reconcile.repair(session, seen, cmd)
    assert replaced == ["profiles", "sessions"] and p == reconcile.normalized(profile)
    assert s is None
    moved = {**seen, "last_seen": T0 + 5}
    assert reconcile.repair(session, moved, cmd) == (None, moved, ["sessions"])


def test_repair_refuses_another_customers_document():
    _, profile = fold(views(2))
    other = {**profile, "customer_id": "c2"}
    cmd = reconcile.command("c1", {"profiles": (profile, other)}, T0, "r1")
    assert reconcile.repair(None, profile, cmd) == (None, profile, [])


def test_reconcile_is_internal_and_validated():
    assert RECONCILE in INTERNAL_TYPES and RECONCILE not in SHOP_TYPES
    bad = {"type": RECONCILE, "customer_id": "c1", "ts": T0, "tables": {"carts": {}}}
    with pytest.raises(InvalidEvent):
        validate_dict(bad)
    with pytest.raises(InvalidEvent):
        validate_dict({**bad, "tables": {"profiles": {"seen": "x"}}})  # state missing


def test_fold_at_snapshots_each_table_at_its_cut():
    events = list(enumerate(views(4)))
    out = fold_at(events, {"sessions": 1, "profiles": 3}, IDLE)
    assert out["sessions"]["events"] == 2 and out["profiles"]["counts"]["product_view"] == 4


def live_of(state: dict, partition: int, end: int) -> dict:
    tables = {"sessions": {}, "profiles": {}}
    for cid, (session, profile) in state.items():
        tables["sessions"][cid] = {**session, "_pos": [partition, end - 1]}
        tables["profiles"][cid] = {**profile, "_pos": [partition, end - 1]}
    return tables


def test_compare_finds_exactly_the_corrupted_customers():
    parts = 1
    events, state, offset = {}, {}, 0
    for cid in ("a", "b", "c"):
        mine = views(3, cid)
        events[cid] = [(offset + i, e) for i, e in enumerate(mine)]
        offset += len(mine)
        state[cid] = fold(mine)
    ends = {0: offset}
    live = live_of(state, partition_for(b"a", parts), offset)
    live["profiles"]["b"] = {**live["profiles"]["b"], "counts": {"product_view": 1}}
    late = [(offset, views(1, "d")[0])]  # after the captured end: in flight
    report = compare(ends, {0: 0}, live, {**events, "d": late}, IDLE)
    assert report.checked == 3 and report.matching == 2 and report.in_flight == 1
    assert list(report.mismatches) == ["b"] and list(report.mismatches["b"]) == ["profiles"]
    assert report.mismatches["b"]["profiles"] == {
        "counts": ({"product_view": 1}, {"product_view": 3})}
    assert compare(ends, {0: 5}, live, events, IDLE).unverifiable == 3  # retention
    assert report.orphans == [] and list(report.repairs) == ["b"]


def test_documents_without_events_are_reported_but_not_repaired():
    """A recreated topic (or lost history) must not make --repair delete customers."""
    _, profile = fold(views(2, "a"))
    live = {"sessions": {}, "profiles": {"a": profile}}
    report = compare({0: 0}, {0: 0}, live, {}, IDLE)
    assert list(report.mismatches) == ["a"] and report.orphans == ["a"] and not report.repairs
