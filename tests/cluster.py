"""Real processes for end-to-end tests: the bundled broker and faust workers."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.cli import broker as bundled_broker
from app.cli.replay import replay
from app.settings import WORKER_ARGV

ROOT = Path(__file__).resolve().parents[1]
FAUST = Path(sys.executable).with_name("faust")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, port: int, tmp: Path):
        self.port, self.tmp, self.proc = port, tmp, None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = bundled_broker.start(self.port, str(self.tmp / "broker.log"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def produce(self, lines, topic: str = "events") -> int:
        """Send JSONL lines (bytes or dicts) keyed by their customer_id."""
        raw = [orjson.dumps(x) if isinstance(x, dict) else x for x in lines]
        return asyncio.run(replay(raw, broker_url=self.url, topic=topic))

    def read_topic(self, topic: str, expect: int, timeout: float = 30.0) -> list[dict]:
        """Read JSON values from the start of ``topic`` until ``expect`` arrive."""
        async def run():
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{self.port}",
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
        """Every record value now on ``topic``, read up to each partition's high watermark.

        Exact (no wait for records that never come): the high watermark in fetch answers
        is right even where the broker's ListOffsets is not (BROKER.md).
        """
        async def run():
            consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{self.port}",
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                await consumer.topics()
                tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
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
    def __init__(self, broker: Broker, port: int, data_dir: Path, env: dict, log: Path):
        self.broker, self.port, self.data_dir, self.env, self.log = broker, port, data_dir, env, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Worker":
        env = {**os.environ, **self.env, "KAFKA_BROKER_URL": self.broker.url,
               "PERSONA_LOCAL_BROKER_COMPAT": "1", "PERSONA_STORE": "rocksdb://",
               "PERSONA_DATA_DIR": str(self.data_dir), "PORT": str(self.port)}
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(FAUST), *WORKER_ARGV, "--web-port", str(self.port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"worker {self.port} exited; log:\n{self.tail()}"
            try:
                status, _ = http("GET", f"{self.url}/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker {self.port} not ready in {timeout}s; log:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class Cluster:
    def __init__(self, broker: Broker, tmp: Path, api_keys: str, env: dict | None = None):
        self.broker, self.tmp = broker, tmp
        self.env = {"PERSONA_API_KEYS": api_keys, **(env or {})}
        self.workers: list[Worker] = []

    def start(self, wait: bool = True, env: dict | None = None) -> Worker:
        port = free_port()
        w = Worker(self.broker, port, self.tmp / f"worker-{port}", {**self.env, **(env or {})},
                   self.tmp / f"worker-{port}.log")
        self.workers.append(w)
        w.start()
        if wait:
            w.wait_ready()
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()


def http(method: str, url: str, key: str | None = None, body=None, headers=None,
         timeout: float = 10.0):
    """One blocking HTTP call: (status, parsed JSON body or text)."""
    async def run():
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        async with aiohttp.ClientSession() as s:
            async with s.request(method, url, headers=h, data=body,
                                 timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                text = await r.text()
                try:
                    return r.status, orjson.loads(text)
                except orjson.JSONDecodeError:
                    return r.status, text
    return asyncio.run(run())


def poll(fn, until, timeout: float = 60.0, interval: float = 0.3):
    """Call ``fn`` until ``until(result)`` holds; return the last result (asserted by caller)."""
    deadline = time.monotonic() + timeout
    result = fn()
    while not until(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = fn()
    return result
