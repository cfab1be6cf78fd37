"""``make run``: a local broker, one worker and a replay of the real sample.

Local development only. The broker is the bundled one, or Apache Kafka (one KRaft node from
Maven Central) with ``BROKER=kafka``. With ``KAFKA_BROKER_URL`` set it uses that broker
instead of starting one. Ctrl-C stops everything it started, the worker first.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time

import orjson

from app import harness
from app.cli import otto
from app.cli.replay import replay
from app.harness.cluster import ROOT, Broker, Worker
from app.harness.net import get_json, port_open
from app.settings import load

DEMO_KEY = "demo-key-for-make-run"


def applied(profile_url: str, key: str, timeout: float = 60.0) -> None:
    """Wait until the worker has applied the replay (the buyer's profile shows the purchase),
    so the commands printed next answer at once instead of a 404."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get_json(profile_url, key)
        if status == 200 and body.get("event_counts", {}).get("purchase"):
            return
        time.sleep(0.2)


def main() -> None:
    env = dict(os.environ)
    env.setdefault("PERSONA_API_KEYS", f"{DEMO_KEY}:ingest|read|admin")
    settings = load(env)
    run_dir = ROOT / ".run"
    run_dir.mkdir(exist_ok=True)
    broker = None
    kind = os.environ.get("BROKER") or "tansu"
    if kind not in harness.KINDS:
        raise SystemExit(f"BROKER={kind!r}: use one of {', '.join(harness.KINDS)}")
    if not os.environ.get("KAFKA_BROKER_URL"):
        port = int(settings.broker_url.rsplit(":", 1)[1])
        if port_open(port):
            raise SystemExit(f"port {port} is taken (an earlier `make run` still running?); "
                             "stop it or set PERSONA_LOCAL_BROKER_PORT")
        print(f"starting the local {kind} broker on port {port}"
              + (" (the first start fetches Kafka from Maven Central)" if kind == "kafka" else ""),
              flush=True)
        try:
            broker = Broker(port, run_dir / "broker.log", kind=kind).start()
        except harness.BrokerUnavailable as exc:
            raise SystemExit(f"make run: {exc}") from None
        env.update(KAFKA_BROKER_URL=broker.url,
                   PERSONA_LOCAL_BROKER_COMPAT="1" if broker.compat else "0")
        settings = load(env)
        # Each start is a new, empty broker: local state from an earlier run is stale.
        shutil.rmtree(ROOT / settings.data_dir, ignore_errors=True)
    # Broker URL, store and data dir come from the environment (Settings), as for any worker.
    worker = Worker(None, run_dir / "worker.log", settings.web_port, env=env,
                    host=settings.web_host).start()

    def stop(*_):
        worker.stop()
        if broker is not None:
            broker.stop()
        print("stopped the worker" + (" and the broker" if broker is not None else ""), flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"broker {settings.broker_url}; worker {worker.url} (logs in .run/)", flush=True)
    try:
        try:
            worker.wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            raise SystemExit(f"worker not ready: {exc}") from None
        events = otto.load_sample()
        n = asyncio.run(replay([orjson.dumps(e) for e in events], broker_url=settings.broker_url))
    except BaseException:
        worker.stop()
        if broker is not None:
            broker.stop()
        raise
    buyer = next(e["customer_id"] for e in events if e["type"] == "purchase")
    key = env["PERSONA_API_KEYS"].split(":", 1)[0]
    url = worker.url
    applied(f"{url}/v1/customers/{buyer}/profile", key)
    print(f"""
replayed {n} real shopper events (OTTO sample) into 'events'.

  health:          {url}/health
  profile:         curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/profile
  current session: curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/activity
  recommendations: curl -H 'Authorization: Bearer {key}' {url}/v1/customers/{buyer}/recommendations
  business KPIs:   curl -H 'Authorization: Bearer {key}' '{url}/v1/kpis?window=1d&from=2022-08-01T00:00:00Z&to=2022-08-29T00:00:00Z'
  dashboard:       {url}/dashboard (enter the key {key})

Ctrl-C stops the worker and the broker.""", flush=True)
    while worker.alive():
        time.sleep(1)
    stop()


if __name__ == "__main__":  # pragma: no cover
    main()
