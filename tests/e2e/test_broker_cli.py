"""``persona-broker``: a local broker in the foreground, ready when a metadata round trip
lists every node, stopped by SIGTERM or Ctrl-C with no process left behind."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.harness import free_port

pytestmark = pytest.mark.e2e
CLI = Path(sys.executable).with_name("persona-broker")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def brokers_listed(bootstrap: str, replicas: int) -> int:
    """Brokers in a metadata answer, after creating a topic with ``replicas`` copies."""
    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("cli-probe", 3, replicas)])
            return len((await admin.describe_cluster())["brokers"])
        finally:
            await admin.close()
    return asyncio.run(run())


@pytest.mark.parametrize("kind,nodes,sig", [("tansu", 1, signal.SIGTERM),
                                            ("kafka", 1, signal.SIGINT),
                                            ("kafka", 3, signal.SIGTERM)])
def test_foreground_broker_prints_its_address_and_stops_clean(kind, nodes, sig, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(CLI), "--kind", kind, "--port", str(port), "--nodes", str(nodes),
                             "--dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"{kind} broker ready: bootstrap 127.0.0.1:{port}"), first
        bootstrap = first.split("bootstrap ", 1)[1].strip()
        assert bootstrap.count(",") == nodes - 1
        assert "KAFKA_BROKER_URL='kafka://" in proc.stdout.readline()
        assert brokers_listed(bootstrap, nodes) == nodes
        started = children_of(proc.pid)
        assert len(started) == nodes
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 10
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in started), "a broker process outlived persona-broker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_java_it_fails_with_one_line(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no java, no mvn
    out = subprocess.run([str(CLI), "--kind", "kafka", "--port", str(free_port()), "--dir",
                          str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("persona-broker: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "java" in out.stderr
