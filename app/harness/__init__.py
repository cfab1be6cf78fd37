"""The local cluster harness, one for ``make run``, the tests and the benchmark (development
only; production runs ``faust worker`` under its own supervisor):

- ``tansu``: the bundled broker (``make run``'s default, Python only);
- ``kafka``: Apache Kafka from Maven Central (KRaft, 1 or 3 nodes, optional SASL_SSL);
- ``ready``: what both share (free ports, stopping a process, waiting for metadata);
- ``cluster``: ``Broker`` (either kind) and ``Worker`` (one ``faust worker`` process);
- ``net``: HTTP and port helpers, CPU accounting;
- ``hosts``: several hosts on one machine (network namespaces on a bridge), a host cut off
  or on a slow link (``nfdelay``: netem's delay and loss where the kernel has no netem).

``create(kind, port, ...)`` gives an unstarted broker of either kind."""
from __future__ import annotations

from pathlib import Path

from app.harness.ready import BrokerUnavailable, free_port

KINDS = ("tansu", "kafka")

__all__ = ["KINDS", "BrokerUnavailable", "free_port", "create"]


def create(kind: str, port: int, workdir: Path, nodes: int = 1, host: str = "127.0.0.1",
           overrides: dict | None = None, netns: str | None = None):
    """An unstarted broker of ``kind`` with ``.start()``, ``.stop()``, ``.bootstrap``;
    ``netns``: its processes run in that network namespace (Kafka only)."""
    if kind == "tansu":
        if nodes != 1 or overrides or netns:
            raise ValueError("the bundled broker runs one node on loopback with no broker "
                             "properties")
        from app.harness.tansu import TansuBroker
        return TansuBroker(port, Path(workdir) / "broker.log", host)
    if kind == "kafka":
        from app.harness.kafka import KafkaCluster
        return KafkaCluster(port, Path(workdir) / f"kafka-{port}", nodes, host, overrides,
                            netns=netns)
    raise ValueError(f"unknown broker kind {kind!r}; known: {', '.join(KINDS)}")
