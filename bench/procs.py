"""Processes of a benchmark run: the bundled broker and real ``faust worker`` processes.

Like ``tests/cluster.py`` but the compatibility switch is a parameter. With the switch
off (real-Kafka settings) the group timers are still set short through Faust's own
environment variables (``BROKER_*``). The producer batches either way (since
app/kafka/broker_compat.py; before it the switch meant one record per produce batch), so the
two labels differ only in the end-offset correction restores use.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from app.cli import broker as bundled_broker
from app.settings import WORKER_ARGV

ROOT = Path(__file__).resolve().parents[1]
FAUST = Path(sys.executable).with_name("faust")
API_KEY = "bench-key"
GROUP_TIMERS = {"BROKER_REBALANCE_TIMEOUT": "10", "BROKER_SESSION_TIMEOUT": "10",
                "BROKER_HEARTBEAT_INTERVAL": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, key: str | None = None, timeout: float = 5.0) -> int:
    """Status of one GET (0 if the connection failed)."""
    return get_json(url, key, timeout)[0]


def get_json(url: str, key: str | None = None, timeout: float = 5.0) -> tuple[int, object]:
    """(status, decoded JSON body or None) of one GET; status 0 if the connection failed."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 if unknown.

    CPU time per event does not depend on how busy the machine is: the figure to
    compare across noisy runs.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Broker:
    def __init__(self, tmp: Path):
        self.port, self.tmp, self.proc = free_port(), tmp, None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "Broker":
        self.proc = bundled_broker.start(self.port, str(self.tmp / f"broker-{self.port}.log"))
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Worker:
    def __init__(self, broker: Broker, tmp: Path, compat: bool, partitions: int,
                 extra_env: dict | None = None, root: Path = ROOT):
        self.broker, self.compat, self.port, self.root = broker, compat, free_port(), root
        self.data_dir = tmp / f"worker-{self.port}"
        self.log = tmp / f"worker-{self.port}.log"
        self.env = {**os.environ, "KAFKA_BROKER_URL": f"kafka://{broker.bootstrap}",
                    "PERSONA_LOCAL_BROKER_COMPAT": "1" if compat else "0",
                    "PERSONA_STORE": "rocksdb://", "PERSONA_DATA_DIR": str(self.data_dir),
                    "PERSONA_PARTITIONS": str(partitions), "PORT": str(self.port),
                    "PERSONA_API_KEYS": f"{API_KEY}:read"}
        if root != ROOT:  # benchmark another checkout (a branch, a prototype of a lever)
            self.env["PYTHONPATH"] = str(root)
        if not compat:
            self.env.update(GROUP_TIMERS)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self) -> "Worker":
        self.started = time.time()
        self.proc = subprocess.Popen(
            [str(FAUST), *WORKER_ARGV, "--web-port", str(self.port)], cwd=self.root, env=self.env, stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.1) -> float:
        """Poll /ready until 200; return the wall time it first answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker {self.port} exited; log:\n{self.tail()}")
            if get(f"{self.url}/ready", timeout=2) == 200:
                return time.time()
            time.sleep(interval)
        raise TimeoutError(f"worker {self.port} not ready in {timeout}s; log:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_times(self, since: int, *needles: str) -> dict:
        """Wall time of the last log line containing each needle, after byte ``since``."""
        found: dict = {}
        with open(self.log, "rb") as f:
            f.seek(since)
            for line in f.read().decode(errors="replace").splitlines():
                for needle in needles:
                    if needle in line and line.startswith("["):
                        stamp = line[1:24]  # 2026-11-27 14:55:29,508
                        try:
                            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
                        except ValueError:
                            continue
                        found[needle] = t.timestamp()
        return found

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
