"""bench/quix: the contender folds the benchmark's events into the same states as the pure
rules do alone (so Persona ÷ Quix compares the same work), erases and drops invalid values."""
from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from app.rules.events import erase_command, parse
from bench import gen, limits
from bench.quix import CHANGELOG, GROUP, STORE, TOPIC

pytest.importorskip("quixstreams")
from bench.quix.app import Fold  # noqa: E402 - needs the bench extra

IDLE_MS = 1800 * 1000


class FakeState(dict):
    """Quix's key-scoped ``State``: get / set / delete of one customer's keys."""

    def set(self, key, value):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


def test_fold_matches_the_pure_rules_and_erases():
    records = gen.generate(40, 1500, seed=7)
    fold, states = Fold(IDLE_MS), defaultdict(FakeState)
    for key, value in records:
        fold(value, states[key])
    _, info = limits._apply_all([parse(v) for _, v in records], IDLE_MS, encode=False)
    assert {k.decode(): s["profile"] for k, s in states.items()} == info["profiles"]
    assert {k.decode(): s["session"] for k, s in states.items()} == info["sessions"]
    assert fold.seen == len(records) and fold.invalid == 0
    cid = records[0][0]
    fold(orjson.dumps(erase_command(cid.decode(), 1_767_225_600_000)), states[cid])
    assert states[cid] == {}
    fold(b'{"type": "product_view"}', states[b"x"])
    assert fold.invalid == 1 and states[b"x"] == {}


def test_changelog_topic_name_is_quixs():
    """The benchmark counts records on this topic: the name Quix 3.28 gives it."""
    from quixstreams.models.topics.manager import TopicManager

    manager = TopicManager.__new__(TopicManager)
    manager._consumer_group = GROUP
    assert manager._internal_name("changelog", TOPIC, STORE) == CHANGELOG
