"""``make run``: the bundled broker, one worker and a replay of the real sample.

Local development only. With ``KAFKA_BROKER_URL`` set it uses that Kafka instead of
starting the bundled broker. Ctrl-C stops everything it started.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from app.cli import broker, otto
from app.cli.replay import replay
from app.settings import WORKER_ARGV, load

DEMO_KEY = "demo-key"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("worker not ready in time")


def main() -> None:
    env = dict(os.environ)
    env.setdefault("PERSONA_API_KEYS", f"{DEMO_KEY}:ingest|read|admin")
    settings = load(env)
    run_dir = Path(".run")
    run_dir.mkdir(exist_ok=True)
    procs: list[subprocess.Popen] = []
    if not os.environ.get("KAFKA_BROKER_URL"):
        port = int(settings.broker_url.rsplit(":", 1)[1])
        if port_open(port):
            raise SystemExit(f"port {port} is taken (an earlier `make run` still running?); "
                             "stop it or set PERSONA_LOCAL_BROKER_PORT")
        procs.append(broker.start(port, str(run_dir / "broker.log")))
        # The bundled broker keeps topics in memory: local state from an earlier run is stale.
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("faust")), *WORKER_ARGV,
         "--web-port", str(settings.web_port)],
        env=env, stdout=open(run_dir / "worker.log", "ab"), stderr=subprocess.STDOUT)
    procs.append(worker)

    def stop(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    url = f"http://{settings.web_host}:{settings.web_port}"
    print(f"broker {settings.broker_url}; worker {url} (logs in .run/)", flush=True)
    try:
        wait_ready(url, worker)
        events = otto.load_sample()
        n = asyncio.run(replay([orjson.dumps(e) for e in events], broker_url=settings.broker_url))
    except BaseException:
        for p in reversed(procs):
            p.terminate()
        raise
    buyer = next(e["customer_id"] for e in events if e["type"] == "purchase")
    key = env["PERSONA_API_KEYS"].split(":", 1)[0]
    print(f"""
replayed {n} real shopper events (OTTO sample) into 'events'.

  health:          {url}/health
  profile:         curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/profile
  current session: curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/activity
  recommendations: curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/recommendations

Ctrl-C stops the worker and the broker.""", flush=True)
    while worker.poll() is None:
        time.sleep(1)
    stop()


if __name__ == "__main__":  # pragma: no cover
    main()
