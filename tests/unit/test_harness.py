"""The local brokers' pure parts: Kafka node properties, cluster ids, the CLI's arguments."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from app import harness
from app.cli import broker as cli
from app.harness import kafka


def props(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_three_nodes_share_the_voters_and_replicate_internal_topics():
    ports = [(9001, 9101), (9002, 9102), (9003, 9103)]
    nodes = [props(kafka.properties(i, ports, Path(f"/d/{i}"), "127.0.0.1")) for i in (1, 2, 3)]
    voters = "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert {n["controller.quorum.voters"] for n in nodes} == {voters}
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    assert nodes[1]["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    assert nodes[1]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9002"
    assert nodes[0]["offsets.topic.replication.factor"] == "3"
    assert nodes[0]["transaction.state.log.min.isr"] == "2"
    assert nodes[0]["auto.create.topics.enable"] == "false"


def test_one_node_replicates_nothing_and_overrides_win():
    one = props(kafka.properties(1, [(9001, 9101)], Path("/d"), "127.0.0.1",
                                 {"log.cleaner.backoff.ms": 100, "num.io.threads": 2}))
    assert one["offsets.topic.replication.factor"] == "1"
    assert one["transaction.state.log.min.isr"] == "1"
    assert one["log.cleaner.backoff.ms"] == "100" and one["num.io.threads"] == "2"


def test_cluster_ids_are_16_random_bytes_in_url_safe_base64():
    ids = {kafka.cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_the_pom_pins_one_kafka_version():
    assert kafka.VERSION.count(".") == 2 and kafka.VERSION[0].isdigit()
    assert "kafka_2.13" in kafka.POM.read_text() and "log4j-slf4j" in kafka.POM.read_text()


def test_broker_kinds_and_their_limits(tmp_path):
    assert harness.create("kafka", 9001, tmp_path, nodes=3).bootstrap.count(",") == 2
    assert harness.create("tansu", 9001, tmp_path).bootstrap == "127.0.0.1:9001"
    with pytest.raises(ValueError, match="one node"):
        harness.create("tansu", 9001, tmp_path, nodes=3)
    with pytest.raises(ValueError, match="unknown broker kind"):
        harness.create("redpanda", 9001, tmp_path)


def test_cli_arguments():
    assert cli.parse(["--kind", "kafka", "--port", "9999", "--nodes", "3"]).nodes == 3
    assert cli.parse([]).kind == "tansu"
    with pytest.raises(SystemExit):
        cli.parse(["--nodes", "3"])  # the bundled broker runs one node
    with pytest.raises(SystemExit):
        cli.parse(["--kind", "kafka", "--nodes", "2"])
