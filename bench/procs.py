"""Processes of a benchmark run, on the local harness (``app/harness/cluster.py``).

What is the benchmark's own: the compatibility switch is a parameter. With the switch off
(real-Kafka settings) the group timers are still set short through Faust's own environment
variables (``BROKER_*``). The producer batches either way (since app/kafka/broker_compat.py;
before it the switch meant one record per produce batch), so the two labels differ only in
the end-offset correction restores use. Workers also read their log's timestamps.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from app.harness import cluster
from app.harness.cluster import ROOT
from app.harness.net import cpu_seconds, get_json
from app.harness.ready import free_port
from app.settings import WORKER_ARGV
from bench import logparse

__all__ = ["API_KEY", "ROOT", "Broker", "NaiveWorker", "Worker", "cpu_seconds", "free_port", "get", "get_json"]

API_KEY = "bench-key-0123456789"
NAIVE_APP = "bench.naive.app"
GROUP_TIMERS = {"BROKER_REBALANCE_TIMEOUT": "10", "BROKER_SESSION_TIMEOUT": "10",
                "BROKER_HEARTBEAT_INTERVAL": "1"}


def get(url: str, key: str | None = None, timeout: float = 5.0) -> int:
    """Status of one GET (0 if the connection failed)."""
    return get_json(url, key, timeout)[0]


#: Apache Kafka's own default for a new group's first assignment: it waits this long (more
#: with each member that joins meanwhile) so workers started together form one group. The
#: test harness sets 0 (its tests start one worker at a time and want it fast); the bench
#: keeps the broker's default, so two workers started together share the partitions from
#: the first assignment, as on a production cluster, instead of the first taking all eight
#: and a rebalance (a flush of everything, a recovery) when the second joins a second
#: later. The bundled broker has no such delay: there the second worker's join stays in
#: the figure.
KAFKA_INITIAL_REBALANCE_DELAY_MS = 3000


class Broker(cluster.Broker):
    """A local broker on a free port, logging into ``tmp``; a context manager. ``kind``:
    the bundled broker (default) or Apache Kafka (one KRaft node, ``--kafka``)."""

    def __init__(self, tmp: Path, kind: str = "tansu"):
        port = free_port()
        overrides = ({"group.initial.rebalance.delay.ms": KAFKA_INITIAL_REBALANCE_DELAY_MS}
                     if kind == "kafka" else None)
        super().__init__(port, tmp / f"broker-{port}" / "broker.log", kind=kind,
                         overrides=overrides)
        self.log.parent.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        """The broker's one process (the bench runs one node)."""
        return self.pids()[0]


class Worker(cluster.Worker):
    def __init__(self, broker: Broker, tmp: Path, compat: bool, partitions: int,
                 extra_env: dict | None = None, root: Path = ROOT):
        port = free_port()
        env = {"PERSONA_PARTITIONS": str(partitions), "PERSONA_API_KEYS": f"{API_KEY}:read|metrics|ingest",
               **({} if compat else GROUP_TIMERS), **(extra_env or {})}
        super().__init__(broker, tmp / f"worker-{port}.log", port, tmp / f"worker-{port}",
                         env, compat=compat, root=root)

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_text(self, since: int = 0) -> str:
        """The log from byte ``since`` on."""
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_times(self, since: int, *needles: str) -> dict:
        """Wall time of the last log line containing each needle, after byte ``since``."""
        return logparse.marks(self.log_text(since), *needles)


class NaiveWorker(Worker):
    """The naive-Faust baseline (``bench/naive/app.py``), always from this checkout.

    Same environment as a Persona worker (broker, partitions, data dir, compat switch,
    ``--worker-env``), same ``faust worker`` command line except the app.
    """

    def __init__(self, broker: Broker, tmp: Path, compat: bool, partitions: int,
                 extra_env: dict | None = None):
        super().__init__(broker, tmp, compat, partitions,
                         {**(extra_env or {}), "PYTHONPATH": str(ROOT)}, ROOT)

    def start(self) -> "NaiveWorker":
        self.started = time.time()
        argv = [a if a != "app.main" else NAIVE_APP for a in WORKER_ARGV]
        self.proc = subprocess.Popen(
            [str(cluster.FAUST), *argv, "--web-port", str(self.port)], cwd=self.root,
            env={**os.environ, **self.env}, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        return self
