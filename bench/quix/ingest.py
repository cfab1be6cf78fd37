"""The Quix Streams contender's ingest: same events, same kind of broker, measured like Persona's.

A fresh broker, ``events`` pre-filled by ``kafka.prefill`` with the same records and
partitions, then one ``bench/quix/app.py`` process. Quix reads the input topic's
``retention.ms`` (it derives its changelog topic's settings from it) and the bundled broker
reports only the settings a topic was created with, so the topic is created with Kafka's
default retention spelled out (on Apache Kafka that changes nothing).

Figures as for Persona (``bench.scenarios.ingest``): events/s = events / (start -> the last
changelog record's timestamp), changelog records from the changelog's high watermark, CPU
from ``/proc`` by pid. What differs, because the process has no ``/ready``: the start is the
wall time of the first event it received (its ``first-event`` line; a changelog record
before it would count, as for Persona); its CPU counts from that line's own CPU reading to
the end (the final checkpoint and closing its consumer and stores included; start-up
excluded, as for Persona); the broker's from when the benchmark saw that line. Done = the
process wrote ``done`` (it stops after the produced count) and then its group's committed
offsets have reached the produced ends.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from app.harness.ready import stop_process
from bench import kafka
from bench.procs import GROUP_TIMERS, ROOT, Broker, cpu_seconds
from bench.quix import CHANGELOG, GROUP, MARK, TOPIC

#: Kafka's default retention (7 days), given explicitly: the bundled broker reports no default.
TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000)}
PIN = "3.28.1"  # setup.cfg's bench extra
#: The group timers Persona's bench workers get (``procs.GROUP_TIMERS``), in librdkafka's names.
CONSUMER = {"session.timeout.ms": 1000 * int(GROUP_TIMERS["BROKER_SESSION_TIMEOUT"]),
            "heartbeat.interval.ms": 1000 * int(GROUP_TIMERS["BROKER_HEARTBEAT_INTERVAL"])}


def installed() -> str | None:
    """The installed quixstreams version, or None."""
    try:
        return version("quixstreams")
    except Exception:  # noqa: BLE001 - PackageNotFoundError or a broken install
        return None


class QuixWorker:
    """One ``python -m bench.quix.app`` process from this checkout, logging into ``tmp``."""

    def __init__(self, broker: Broker, tmp: Path, count: int, idle_s: float):
        self.dir = Path(tempfile.mkdtemp(prefix="quix-", dir=tmp))
        self.log = self.dir / "quix.log"
        self.argv = [sys.executable, "-m", "bench.quix.app", "--broker", broker.bootstrap,
                     "--state-dir", str(self.dir / "state"), "--count", str(count),
                     "--idle-s", str(idle_s),
                     *(f"--consumer={k}={v}" for k, v in CONSUMER.items())]
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self) -> "QuixWorker":
        self.started = time.time()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)},
                                         start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def wait_mark(self, name: str, timeout: float, interval: float = 0.02) -> dict:
        """The ``key=value`` fields of the process's ``quix-bench <name>`` line, once written."""
        pattern = re.compile(rf"^{MARK} {name} (.*)$", re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                return {k: float(v) for k, v in
                        (field.split("=", 1) for field in found.group(1).split())}
            if not self.alive():
                raise RuntimeError(f"the Quix process exited with {self.proc.poll()}; "
                                   f"log {self.log}:\n{self.tail()}")
            time.sleep(interval)
        raise TimeoutError(f"no '{MARK} {name}' line in {timeout}s; log:\n{self.tail()}")


def ingest(ctx, kind: str = "tansu") -> dict:
    """One Quix process over ``ctx.records`` on a fresh broker of ``kind``."""
    n = len(ctx.records)
    label = f"Quix Streams {installed()}, 1 worker, " + (
        "Apache Kafka" if kind == "kafka" else "bundled broker")
    idle_s = float(ctx.worker_env.get("SESSION_IDLE_S", 1800))
    with Broker(ctx.tmp, kind) as b:
        ends, secs = asyncio.run(kafka.prefill(b.bootstrap, TOPIC, ctx.records, ctx.partitions,
                                               TOPIC_CONFIG))
        w = QuixWorker(b, ctx.tmp, n, idle_s).start()
        try:
            first = w.wait_mark("first-event", timeout=120)
            broker0 = cpu_seconds(b.pid)
            ctx.log(f"  {label}: first event {first['wall'] - w.started:.1f}s after start; "
                    "ingesting")
            end = w.wait_mark("done", timeout=max(600, n / 100), interval=0.1)
            worker_cpu = cpu_seconds(w.pid) - first["cpu"]
            broker_cpu = cpu_seconds(b.pid) - broker0
            asyncio.run(kafka.wait_consumed(b.bootstrap, TOPIC, ends, 30, w.alive, GROUP))
            stats = asyncio.run(kafka.settled_changelogs(b.bootstrap, topics=(CHANGELOG,)))
            if not stats["records"]:
                raise RuntimeError(f"no records on {CHANGELOG}; log {w.log}:\n{w.tail()}")
        finally:
            w.stop()
    start = min(first["wall"], stats["first_ts"] or first["wall"])
    out = {
        "label": label, "events": n, "prefill_eps": n / secs, "kind": kind,
        "ready_s": first["wall"] - w.started,
        "eps": n / (stats["last_ts"] - start),
        "seconds": stats["last_ts"] - start,
        "done_after_last_changelog_s": end["wall"] - stats["last_ts"],
        "changelog_records": stats["records"],
        "changelog_per_event": stats["records"] / n,
        "invalid_events": int(end["invalid"]),
        "worker_cpu_us_per_event": 1e6 * worker_cpu / n,
        "broker_cpu_us_per_event": 1e6 * broker_cpu / n,
    }
    ctx.log(f"  {label}: {out['eps']:,.0f} events/s, {out['changelog_per_event']:.2f} "
            f"changelog records/event, worker CPU {out['worker_cpu_us_per_event']:,.0f} "
            f"us/event, broker {out['broker_cpu_us_per_event']:,.0f} us/event")
    return out
