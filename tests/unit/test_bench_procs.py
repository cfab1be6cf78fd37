"""bench/procs: the bench's Apache Kafka node keeps Kafka's own first-assignment delay (two
workers started together form one group, as on a production cluster), while the test
harness's nodes assign at once; the bundled broker takes no broker properties."""
from __future__ import annotations

from app import harness
from app.harness.kafka import properties
from bench.procs import KAFKA_INITIAL_REBALANCE_DELAY_MS, Broker

DELAY = "group.initial.rebalance.delay.ms"


def props_of(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines()
                if "=" in line and not line.startswith("#"))


def test_the_bench_kafka_node_waits_for_the_workers_started_together(tmp_path):
    broker = Broker(tmp_path, "kafka")  # not started: only its node's properties are read
    impl = broker.impl
    written = props_of(properties(1, impl.ports, tmp_path / "data", impl.host, impl.overrides))
    assert KAFKA_INITIAL_REBALANCE_DELAY_MS == 3000  # Kafka's own default
    assert written[DELAY] == "3000"


def test_the_test_harness_and_the_bundled_broker_keep_theirs(tmp_path, monkeypatch):
    harness_props = props_of(properties(1, [(9092, 9093)], tmp_path / "data", "127.0.0.1"))
    assert harness_props[DELAY] == "0"
    asked = []  # the broker properties each bench broker asks the harness for
    create = harness.create

    def recorded(kind, port, workdir, nodes, host, overrides, netns):
        asked.append((kind, overrides))
        return create(kind, port, workdir, nodes, host, overrides, netns)

    monkeypatch.setattr(harness, "create", recorded)
    Broker(tmp_path, "tansu")
    Broker(tmp_path, "kafka")
    assert asked == [("tansu", None), ("kafka", {DELAY: KAFKA_INITIAL_REBALANCE_DELAY_MS})]
