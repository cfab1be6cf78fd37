"""The three Faust workarounds (app/kafka/workarounds.py) and routing while a worker starts.

The races themselves only show with real processes (tests/e2e/test_chaos.py); these pin down
what each piece does.
"""
from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import ThreadDelegateConsumer
from faust.types import TP

import web.routing as routing
from app.kafka import workarounds
from app.main import app
from tables.profiles import profiles

EVENTS0, EVENTS1, EVENTS2 = TP("events", 0), TP("events", 1), TP("events", 2)
CHANGELOG = TP("persona-profiles-changelog", 1)


async def test_never_committed_stream_partitions_are_rewound_to_the_beginning(monkeypatch):
    committed = {EVENTS0: 17, EVENTS1: None, EVENTS2: 0, CHANGELOG: None}  # 0 is committed
    monkeypatch.setattr(workarounds, "_seek_to_committed", AsyncMock(return_value=committed))
    consumer = SimpleNamespace(
        _is_changelog_tp=lambda tp: tp is CHANGELOG,
        app=SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset="earliest")),
        _thread=SimpleNamespace(seek_to_beginning=AsyncMock()))
    assert await workarounds._seek_to_committed_or_beginning(consumer) == committed
    consumer._thread.seek_to_beginning.assert_awaited_once_with(EVENTS1)

    consumer.app.conf.consumer_auto_offset_reset = "latest"  # then Faust's choice stands
    consumer._thread.seek_to_beginning.reset_mock()
    await workarounds._seek_to_committed_or_beginning(consumer)
    consumer._thread.seek_to_beginning.assert_not_awaited()


async def test_the_consumer_stays_stopped_from_rebalance_complete_until_faust_resumes_it():
    assert ThreadDelegateConsumer.seek_to_committed is workarounds._seek_to_committed_or_beginning
    fake = SimpleNamespace(consumer=MagicMock())
    await workarounds._no_fetch_until_seeked(fake)
    fake.consumer.stop_flow.assert_called_once_with()
    signal = app.on_rebalance_complete  # connected for this app as the sender
    receivers = set(signal._receivers).union(*signal._filter_receivers.values())
    assert workarounds._no_fetch_until_seeked in receivers


async def test_a_created_topic_is_awaited_until_the_metadata_lists_its_partitions(monkeypatch):
    from faust.transport.drivers.aiokafka import Transport
    installed = Transport._create_topic  # app.kafka.topic_check wraps the workaround
    assert getattr(installed, "wrapped", installed) is workarounds._create_topic_then_see_it
    monkeypatch.setattr(workarounds, "_create_topic", AsyncMock())
    answers = iter([set(), {0, 1}, {0, 1, 2}])  # not yet, in part, then all three partitions
    leaders = {0: 1, 1: 1, 2: -1}  # partition 2's leader is elected on the fourth answer
    calls = []

    async def fetch_all_metadata():
        calls.append(1)
        found = next(answers, {0, 1, 2})
        if len(calls) == 4:
            leaders[2] = 1
        return SimpleNamespace(partitions_for_topic=lambda t: found,
                               leader_for_partition=lambda tp: leaders[tp.partition])
    client = SimpleNamespace(fetch_all_metadata=fetch_all_metadata)
    seen = await workarounds._create_topic_then_see_it(None, None, client, "events", 3, 1)
    workarounds._create_topic.assert_awaited_once()
    assert seen.partitions_for_topic("events") == {0, 1, 2}  # what app.kafka.topic_check reads
    assert len(calls) == 4


def test_reads_answer_unknown_owner_while_the_consumer_is_not_started(monkeypatch):
    def not_started(topic, key):
        raise ConsumerNotStarted("Consumer thread not yet started")

    monkeypatch.setattr(routing, "partition_of", not_started)
    assert routing._owner_and_tp(profiles, "c1") is None


def test_a_read_skips_the_owner_checks_only_until_the_next_rebalance(monkeypatch):
    """``routing._serving_here``: a partition found serving here answers without the owner
    lookup and its checks, but not while a rebalance runs, after one, or while stopping."""
    monkeypatch.setattr(routing, "partition_of", lambda topic, key: 1)
    monkeypatch.setattr(routing, "_SERVING", {})
    monkeypatch.setattr(app, "rebalancing", False)
    monkeypatch.setattr(app, "rebalancing_count", 7)
    tp = TP(profiles.changelog_topic.get_topic_name(), 1)
    assert routing._serving_here(profiles, "c1") is None  # never found serving

    routing._remember_serving(tp, 7)
    assert routing._serving_here(profiles, "c1") == 1
    monkeypatch.setattr(app, "rebalancing", True)
    assert routing._serving_here(profiles, "c1") is None  # a rebalance runs
    routing._remember_serving(tp, 7)  # what a read finds meanwhile is not kept
    monkeypatch.setattr(app, "rebalancing_count", 8)
    monkeypatch.setattr(app, "rebalancing", False)
    assert routing._serving_here(profiles, "c1") is None  # a rebalance has run since
    routing._remember_serving(tp, 7)  # checks begun before it: not kept
    assert routing._serving_here(profiles, "c1") is None
    routing._remember_serving(tp, 8)
    assert routing._serving_here(profiles, "c1") == 1
    monkeypatch.setattr(routing, "partition_of", lambda topic, key: 2)
    assert routing._serving_here(profiles, "c2") is None  # another partition
    monkeypatch.setattr(routing, "partition_of", lambda topic, key: 1)
    monkeypatch.setattr(type(app), "should_stop", property(lambda self: True))
    assert routing._serving_here(profiles, "c1") is None  # stopping
