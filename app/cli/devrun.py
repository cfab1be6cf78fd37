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
from app.cli import logread, otto
from app.cli.replay import _bootstrap, replay
from app.consistency.shadow import LIVE_APP_ID
from app.harness.cluster import ROOT, Broker, Worker
from app.harness.net import port_open
from app.settings import load

DEMO_KEY = "demo-key-for-make-run"
EVENTS = "events"


async def applied(broker_url: str, compat: bool, timeout: float = 60.0) -> None:
    """Wait until the worker has applied (and committed) every replayed event, so the
    commands printed next answer with the whole sample at once, not a part of it or a 404."""
    bootstrap = _bootstrap(broker_url)
    consumer = logread.reader(bootstrap)
    await consumer.start()
    try:
        ends = await logread.end_offsets(consumer, bootstrap, EVENTS, compat)
    finally:
        await consumer.stop()
    try:
        await logread.wait_committed(bootstrap, LIVE_APP_ID, EVENTS, ends, timeout)
    except TimeoutError:  # the URLs are still worth printing; the worker log says why
        print(f"the worker has not applied the replay within {timeout:.0f}s", flush=True)


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
    asyncio.run(applied(settings.broker_url, settings.local_broker_compat))
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
