"""app.observability.gc_policy: PERSONA_GC parsing, the thresholds and freeze it sets, and the pause timer."""
from __future__ import annotations

import gc

import pytest

from app.observability import gc_policy
from app.settings import ConfigError, load


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_persona_gc_is_tuned_by_default_and_refuses_other_values():
    assert load({}).gc == "tuned" and load({"PERSONA_GC": " Default "}).gc == "default"
    with pytest.raises(ConfigError, match="^PERSONA_GC must be tuned or default, got 'off'"):
        load({"PERSONA_GC": "off"})


def test_tuned_keeps_generation_0_and_sets_the_older_ones(restore_gc):
    gc.set_threshold(700, 10, 10)
    assert gc_policy.configure("tuned") == (700, 10, 10)
    assert gc.get_threshold() == (700, gc_policy.GEN1_THRESHOLD, gc_policy.GEN2_THRESHOLD)
    assert gc.isenabled()
    # A full collection as often as CPython's 10 generation-0 per generation-1 with 1,000.
    assert gc_policy.GEN1_THRESHOLD * gc_policy.GEN2_THRESHOLD == 10 * 1000


def test_default_keeps_cpythons_thresholds_and_freezes_nothing(restore_gc):
    gc.set_threshold(700, 10, 10)
    gc_policy.configure("default")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc_policy.freeze_startup("default") == 0 and gc.get_freeze_count() == 0


def test_freeze_startup_keeps_live_objects_out_of_later_collections(restore_gc):
    alive = [[i] for i in range(1000)]  # tracked containers that outlive start-up
    frozen = gc_policy.freeze_startup("tuned")
    # The count only shrinks afterwards: a frozen object that dies (another thread of the
    # test process may free some meanwhile) leaves the permanent generation.
    assert len(alive) <= gc.get_freeze_count() <= frozen
    assert not any(alive[0] is o for o in gc.get_objects())  # no longer scanned


def test_full_collections_are_timed_and_young_ones_are_not():
    seen = []
    callback = gc_policy.observe(seen.append)
    try:
        gc.collect(0)
        gc.collect(1)
        assert seen == []
        gc.collect(2)
        assert len(seen) == 1 and 0 <= seen[0] < 5
    finally:
        gc.callbacks.remove(callback)
