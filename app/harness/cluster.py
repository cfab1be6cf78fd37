"""Brokers and real ``faust worker`` processes of the local cluster harness.

One harness for ``make run`` (``app.cli.devrun``), the end-to-end tests (``tests/support``)
and the benchmark (``bench/procs.py``). Development only: the brokers come from the dev extra
and Maven Central (``app.harness.tansu``, ``app.harness.kafka``); production runs ``faust worker`` under its own supervisor.

- ``Broker``: a local broker of either kind (Tansu, or Kafka with 1 or 3
  nodes); start/stop (also a context manager), ``produce``, ``read_topic``, ``read_all``.
- ``Worker``: one ``faust worker`` with its env, data dir and log file; start, stop, kill -9,
  wait_ready, wipe, tail.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app import harness
from app.cli.logread import partitions
from app.cli.replay import replay
from app.harness.net import get_json
from app.harness.ready import free_port, in_netns, stop_process
from app.settings import WORKER_ARGV

ROOT = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).with_name("faust")


class Broker:
    """A local broker (``app.harness``): the bundled Tansu or Apache Kafka (1 or 3 nodes), on
    loopback (node 1 on ``port``, a free port unless given), logging beside ``log``.

    ``kind``: ``tansu`` (default) or ``kafka``.
    ``overrides``: extra Kafka broker properties (e.g. a fast log cleaner for a test).
    ``host``, ``netns``: the address the nodes listen on and advertise, and the network
    namespace they run in (``app.harness.hosts``; Kafka only).
    """

    def __init__(self, port: int | None = None, log: Path | None = None, kind: str | None = None,
                 nodes: int = 1, overrides: dict | None = None, host: str = "127.0.0.1",
                 netns: str | None = None):
        self.port, self.log = port or free_port(), log
        self.kind = kind or "tansu"
        workdir = log.parent if log else Path(tempfile.mkdtemp(prefix="persona-broker-"))
        self.impl = harness.create(self.kind, self.port, workdir, nodes, host, overrides, netns)
        if self.kind == "tansu":
            self.impl.log = log

    @property
    def url(self) -> str:
        return "kafka://" + ";".join(self.bootstrap.split(","))

    @property
    def bootstrap(self) -> str:
        return self.impl.bootstrap

    @property
    def compat(self) -> bool:
        """Whether workers need the bundled broker's compatibility switch."""
        return self.kind == "tansu"

    def start(self) -> "Broker":
        self.impl.start()
        return self

    def stop(self) -> None:
        self.impl.stop()

    def pids(self) -> list[int]:
        return self.impl.pids()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every broker process (e.g. SIGSTOP: a broker that answers nothing)."""
        for pid in self.pids():
            os.kill(pid, sig)

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def produce(self, lines, topic: str = "events") -> int:
        """Send JSONL lines (bytes or dicts) keyed by their customer_id."""
        raw = [orjson.dumps(x) if isinstance(x, dict) else x for x in lines]
        return asyncio.run(replay(raw, broker_url=self.url, topic=topic))

    def read_topic(self, topic: str, expect: int, timeout: float = 30.0) -> list[dict]:
        """Read JSON values from the start of ``topic`` until ``expect`` arrive (or time out)."""
        async def run():
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap,
                                        auto_offset_reset="earliest", enable_auto_commit=False)
            await consumer.start()
            out = []
            try:
                deadline = time.monotonic() + timeout
                while len(out) < expect and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        out.extend(orjson.loads(r.value) for r in records)
            finally:
                await consumer.stop()
            return out
        return asyncio.run(run())

    def read_all(self, topic: str, timeout: float = 30.0) -> list[bytes]:
        """Every record value now on ``topic``, read up to each partition's high watermark
        ([] if the topic does not exist).

        Exact (no wait for records that never come): the high watermark in fetch answers
        is right even where the broker's ListOffsets is not (BROKER.md).
        """
        async def run():
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                tps = [TopicPartition(topic, p) for p in await partitions(self.bootstrap, topic)]
                if not tps:  # no such topic (yet): nothing on it
                    return []
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                out, deadline = [], time.monotonic() + timeout
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    for records in batch.values():
                        out.extend(r.value for r in records)
                    behind = [tp for tp in tps if consumer.highwater(tp) is None
                              or await consumer.position(tp) < consumer.highwater(tp)]
                    if not behind:
                        return out
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{topic}: not read to the end in {timeout}s")
            finally:
                await consumer.stop()
        return asyncio.run(run())


class Worker:
    """One ``faust worker`` process of this app, run in ``root`` (another checkout: PYTHONPATH).

    ``broker`` (a Broker or a kafka:// URL) sets KAFKA_BROKER_URL and the compatibility switch;
    None leaves both to the environment. ``data_dir`` sets a RocksDB store there; None leaves
    the store to the environment. ``env`` is applied last, over the environment.
    ``host``: the address it binds and advertises (PERSONA_WEB_BIND, PERSONA_WEB_HOST unless
    ``env`` says otherwise); ``netns``: the network namespace it runs in (``app.harness.hosts``).
    """

    def __init__(self, broker: Broker | str | None, log: Path, port: int | None = None,
                 data_dir: Path | None = None, env: dict | None = None, compat: bool = True,
                 root: Path = ROOT, host: str = "127.0.0.1", netns: str | None = None):
        self.port, self.log, self.data_dir, self.root, self.host = (
            port or free_port(), log, data_dir, root, host)
        self.netns = netns
        self.env: dict = {"PORT": str(self.port)}
        if netns:
            self.env.update(PERSONA_WEB_HOST=host, PERSONA_WEB_BIND=host)
        if broker is not None:
            self.env["KAFKA_BROKER_URL"] = broker.url if isinstance(broker, Broker) else broker
            on = compat and (broker.compat if isinstance(broker, Broker) else True)
            self.env["PERSONA_LOCAL_BROKER_COMPAT"] = "1" if on else "0"
        if data_dir is not None:
            self.env.update(PERSONA_STORE="rocksdb://", PERSONA_DATA_DIR=str(data_dir))
        if root != ROOT:
            self.env["PYTHONPATH"] = str(root)
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self) -> "Worker":
        self.started = time.time()
        self.proc = subprocess.Popen(
            in_netns(self.netns, [str(FAUST), *WORKER_ARGV, "--web-port", str(self.port)]),
            cwd=self.root,
            env={**os.environ, **self.env}, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)  # a terminal's Ctrl-C reaches its starter, which stops it
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.1) -> float:
        """Poll /ready until 200; return the wall time it first answered 200.

        Raises RuntimeError (with the log's tail) if the worker exits, TimeoutError if late.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker {self.port} exited with {self.proc and self.proc.poll()}"
                                   f"; log {self.log}:\n{self.tail()}")
            if get_json(f"{self.url}/ready", timeout=2)[0] == 200:
                return time.time()
            time.sleep(interval)
        raise TimeoutError(f"worker {self.port} not ready in {timeout}s; log:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def wipe(self) -> None:
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
