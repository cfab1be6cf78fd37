"""What the tests add to the local harness (``app/harness/cluster.py``): ``Cluster``, the workers of one
test on the module's broker (the ``cluster`` fixture), and ``poll``."""
from __future__ import annotations

import time
from pathlib import Path

from app.harness.cluster import Broker, Worker
from app.harness.ready import free_port


class Cluster:
    """Workers on one broker, each with its own port, data dir and log under ``tmp``."""

    def __init__(self, broker: Broker, tmp: Path, api_keys: str, env: dict | None = None):
        self.broker, self.tmp = broker, tmp
        self.env = {"PERSONA_API_KEYS": api_keys, **(env or {})}
        self.workers: list[Worker] = []

    def start(self, wait: bool = True, env: dict | None = None) -> Worker:
        port = free_port()
        w = Worker(self.broker, self.tmp / f"worker-{port}.log", port, self.tmp / f"worker-{port}",
                   {**self.env, **(env or {})})
        self.workers.append(w)
        w.start()
        if wait:
            w.wait_ready()
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()


def poll(fn, until, timeout: float = 60.0, interval: float = 0.3):
    """Call ``fn`` until ``until(result)`` holds; return the last result (asserted by caller)."""
    deadline = time.monotonic() + timeout
    result = fn()
    while not until(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = fn()
    return result
