"""The local brokers of the harness: the bundled Tansu (``make run``'s default, Python only)
and Apache Kafka from Maven Central (KRaft, 1 or 3 nodes). ``start(kind, port, ...)`` gives
either, ready (a metadata round trip answered). Development and tests only."""
from __future__ import annotations

from pathlib import Path

from app.brokers.ready import BrokerUnavailable, free_port

KINDS = ("tansu", "kafka")

__all__ = ["KINDS", "BrokerUnavailable", "free_port", "create"]


def create(kind: str, port: int, workdir: Path, nodes: int = 1, host: str = "127.0.0.1",
           overrides: dict | None = None):
    """An unstarted broker of ``kind`` with ``.start()``, ``.stop()``, ``.bootstrap``."""
    if kind == "tansu":
        if nodes != 1 or overrides:
            raise ValueError("the bundled broker runs one node with no broker properties")
        from app.brokers.tansu import TansuBroker
        return TansuBroker(port, Path(workdir) / "broker.log", host)
    if kind == "kafka":
        from app.brokers.kafka import KafkaCluster
        return KafkaCluster(port, Path(workdir) / f"kafka-{port}", nodes, host, overrides)
    raise ValueError(f"unknown broker kind {kind!r}; known: {', '.join(KINDS)}")
