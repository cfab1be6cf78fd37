"""Existing topics against the settings (app/kafka/topic_check.py): the refusal line, and the
hook around Faust's topic declaration."""
from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import AsyncMock

import pytest
from faust.transport.drivers.aiokafka import Transport

from app import kafka
from app.kafka import topic_check


def test_only_a_partitioned_topic_with_another_count_is_refused():
    assert topic_check.partition_problem("events", 8, 8, 8) is None
    assert topic_check.partition_problem("audit", 1, 1, 8) is None
    assert topic_check.partition_problem("persona-__assignor-__leader", 1, 1, 8) is None
    line = topic_check.partition_problem("events", 4, 8, 4)
    assert line.startswith("PERSONA_PARTITIONS=4 but topic 'events' has 8 partitions")
    assert "\n" not in line


def metadata(partitions: int, replicas: int):
    parts = {p: SimpleNamespace(replicas=list(range(replicas))) for p in range(partitions)}
    return SimpleNamespace(partitions_for_topic=lambda t: set(parts), _partitions={"events": parts})


async def test_a_mismatch_exits_with_one_line_and_low_replication_warns(monkeypatch, capfd,
                                                                          caplog):
    """The check reads the metadata the topic's creation (app.kafka.workarounds) saw."""
    original = Transport._create_topic
    seen = AsyncMock()
    monkeypatch.setattr(Transport, "_create_topic", seen)
    try:
        topic_check.install(partitions=4)
        check = Transport._create_topic
        exits = []
        monkeypatch.setattr(kafka.os, "_exit", exits.append)
        seen.return_value = metadata(8, 3)
        await check(None, None, None, "events", 4, 3)
        assert exits == [2]
        assert capfd.readouterr().err.startswith("persona: PERSONA_PARTITIONS=4 but topic")
        exits.clear()
        seen.return_value = metadata(4, 1)
        await check(None, None, None, "events", 4, 3)
        assert exits == []
        assert "below PERSONA_REPLICATION_FACTOR=3" in caplog.text
        seen.return_value = None  # never visible: the workaround warned, nothing to compare
        await check(None, None, None, "events", 4, 3)
        assert exits == []
    finally:
        Transport._create_topic = original


@pytest.mark.parametrize("env,rf,isr", [({}, 1, 1), ({"PERSONA_REPLICATION_FACTOR": "3"}, 3, 2),
                                        ({"PERSONA_REPLICATION_FACTOR": "2"}, 2, 1)])
def test_replication_settings(env, rf, isr):
    from app.settings import load
    s = load(env)
    assert (s.replication_factor, s.min_insync_replicas) == (rf, isr)


def test_min_insync_above_the_replication_factor_is_refused():
    from app.settings import ConfigError, load
    with pytest.raises(ConfigError, match="PERSONA_MIN_INSYNC_REPLICAS"):
        load({"PERSONA_REPLICATION_FACTOR": "2", "PERSONA_MIN_INSYNC_REPLICAS": "3"})
