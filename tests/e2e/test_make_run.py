"""``make run`` as a new user meets it: the bundled broker (or ``BROKER=kafka``), one worker
and the real sample replayed; the printed profile command answers; Ctrl-C (SIGINT to the
whole process group, as a terminal sends it) stops the worker, then the broker, within
~10 s, with one line and no traceback, and leaves no process behind."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from app.cli.otto import load_sample
from app.harness import free_port
from app.harness.cluster import ROOT
from app.harness.net import http

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def lines_of(proc: subprocess.Popen) -> queue.Queue:
    out: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            out.put(line.rstrip("\n"))
        out.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return out


def processes_mentioning(token: str) -> list[int]:
    """Live processes (not this one) whose command line mentions ``token``."""
    return _processes(lambda entry: token in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())


def processes_started_under(data_dir: Path) -> list[int]:
    """Live processes (not this one) whose environment holds PERSONA_DATA_DIR=``data_dir``:
    this run's ``make run`` and whatever it started, and nothing of a test running beside it.
    (A port is no mark: a port freed here can be handed to another test's worker at once.)"""
    mark = f"PERSONA_DATA_DIR={data_dir}".encode()
    return _processes(lambda entry: mark in (entry / "environ").read_bytes().split(b"\0"))


def _processes(match) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and match(entry):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("kind", ["tansu", "kafka"])
def test_make_run_serves_the_sample_and_ctrl_c_stops_it_clean(kind, tmp_path):
    port, web = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONA_", "KAFKA_"))}
    env.update(BROKER=kind, PERSONA_LOCAL_BROKER_PORT=str(port), PORT=str(web),
               PERSONA_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "app.cli.devrun"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out, seen = lines_of(proc), []
    try:
        deadline = time.monotonic() + 300
        while not seen or seen[-1] != "Ctrl-C stops the worker and the broker.":
            line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "\n".join(seen)
            seen.append(line)
        text = "\n".join(seen)
        assert "replayed 857 real shopper events" in text, text
        profile = next(ln for ln in seen if ln.strip().startswith("profile:")).split()
        key, url = profile[5].rstrip("'"), profile[-1]
        status, body = http("GET", url, key)
        # Printed once the whole replay is applied: the customer's counts are the sample's.
        cid = url.rsplit("/", 2)[-2]
        want = Counter(e["type"] for e in load_sample() if e["customer_id"] == cid)
        assert status == 200 and body["event_counts"] == dict(want), (status, body, want)
        assert http("GET", url)[0] == 401
        # The worker runs, and is found by the mark the check for leftovers below relies on.
        assert set(processes_mentioning(f"--web-port {web}")) & set(
            processes_started_under(tmp_path / "data"))

        os.killpg(proc.pid, signal.SIGINT)
        start = time.monotonic()
        proc.wait(timeout=30)
        took = time.monotonic() - start
        tail = []
        while (line := out.get(timeout=5)) is not None:
            tail.append(line)
    finally:
        if proc.poll() is None:  # a failed check above: stop it as a user would, then for sure
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        left = processes_started_under(tmp_path / "data")
        for pid in left:
            os.kill(pid, signal.SIGKILL)  # the worker and broker run in their own sessions
    assert proc.returncode == 0, tail
    assert took <= 10.0, took
    assert tail == ["stopped the worker and the broker"], tail
    assert left == [], f"left running after Ctrl-C: {left}"
