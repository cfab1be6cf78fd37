"""Run candidate code as a shadow app over the live ``events`` topic and diff its answers.

``persona-shadow --app-root DIR --api-key KEY [--live-url URL] [--name N] [--timeout S]``
(same environment as the workers). Exit 0 when no answer changes, 1 when some do, 2 when
it could not compare.

1. Captures the end offsets of ``events`` and the customers on it below them.
2. Starts one ``faust worker`` from ``DIR`` (another checkout, like ``bench --app-root``)
   with ``PERSONA_SHADOW=<name>`` (``app.consistency.shadow``: own app id, consumer group, changelogs,
   outbox and DLQ topics; no webhooks, no re-keying), a fresh data dir, a free loopback
   port and a read-only key of its own (its ingest, erase and demo routes cannot produce
   to ``events``); webhook, JWT, TLS, rate-limit and failpoint variables are cleared for it.
   The candidate must know ``PERSONA_SHADOW`` (``app/consistency/shadow.py``), else it would run as
   the live app: the tool refuses such a checkout.
3. Waits until the shadow's group has committed those offsets (it starts from the
   beginning of ``events``), then reads every customer's profile, activity and
   recommendations from the live workers and from the shadow, both with ``?after=`` at the
   captured end (read-your-writes: each side has applied at least those events).
4. Customers whose answers differ are read again at fresh end offsets (a live event in
   flight during step 3 could make a difference that is not the candidate's); what still
   differs is reported per customer and top-level field (``profile.category_affinities``).
5. Stops the shadow worker and deletes its data dir (``--keep`` keeps it). Its topics
   (``persona-shadow-<name>-*``) stay on the broker; delete them with the broker's tools.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from app.cli import logread, progress
from app.cli.reconcile import short
from app.cli.replay import _bootstrap
from app.client import AsyncPersonaClient
from app.consistency.positions import encode
from app.consistency.shadow import LIVE_APP_ID, app_id
from app.harness.cluster import Worker
from app.rules.events import parse
from app.settings import settings

EVENTS = "events"
WHAT = ("profile", "activity", "recommendations")
#: Where a checkout that knows PERSONA_SHADOW keeps the module (now; and before app/'s rooms).
SHADOW_AWARE = ("app/consistency/shadow.py", "app/shadow.py")
CLEARED = ("PERSONA_API_KEYS_FILE", "PERSONA_WEBHOOKS", "PERSONA_WEBHOOKS_FILE",
           "PERSONA_DEMO_KEY", "PERSONA_TLS_CERT", "PERSONA_TLS_KEY", "PERSONA_FAILPOINT",
           "PERSONA_RATE_READ", "PERSONA_RATE_INGEST", "PERSONA_RATE_PUBLISHABLE",
           "PERSONA_DATA_DIR", "PERSONA_WEB_PORT", "PERSONA_STANDBY_REPLICAS")


async def snapshot(bootstrap: str, compat: bool, shown: bool = False) -> tuple[dict, set]:
    """End offsets of ``events`` and the customers of the valid, well-keyed records below."""
    consumer = logread.reader(bootstrap)
    await consumer.start()
    try:
        ends = await logread.end_offsets(consumer, bootstrap, EVENTS, compat)
        starts = await logread.start_offsets(consumer, bootstrap, EVENTS) if shown else {}
        customers = set()
        with progress.bar(EVENTS, sum(ends[p] - starts.get(p, 0) for p in ends),
                          enabled=shown) as bar:
            async for r in logread.read_to(bootstrap, EVENTS, ends):
                bar.update()
                try:
                    cid = parse(r.value)["customer_id"]
                except Exception:  # noqa: BLE001 - dead-lettered: no customer
                    continue
                if (r.key == cid.encode()
                        and logread.partition_for(r.key, len(ends)) == r.partition):
                    customers.add(cid)
        return ends, customers
    finally:
        await consumer.stop()


def shadow_env(name: str, key: str, broker_url: str, compat: bool) -> dict:
    env = {var: "" for var in CLEARED}
    env.update({var: "" for var in os.environ if var.startswith("PERSONA_JWT_")})
    env.update(PERSONA_SHADOW=name, PERSONA_API_KEYS=f"{key}:read",
               PERSONA_WEB_HOST="127.0.0.1", KAFKA_BROKER_URL=broker_url,
               PERSONA_LOCAL_BROKER_COMPAT="1" if compat else "0")
    return env


async def answers(client: AsyncPersonaClient, cid: str, ends: dict) -> dict:
    p = logread.partition_for(cid.encode(), len(ends))
    token = encode({p: ends[p] - 1})
    got = {}
    for what in WHAT:
        got[what] = await getattr(client, what)(cid, after=token, wait_ms=5000)
    return got


def fields_differing(live: dict, shadow: dict) -> dict:
    """{"<what>.<field>": (live, shadow)}; ``<what>.(document)`` when one side is absent."""
    out = {}
    for what in WHAT:
        a, b = live[what], shadow[what]
        if a is None or b is None:
            if a is not b:
                out[f"{what}.(document)"] = ("absent" if a is None else "present",
                                             "absent" if b is None else "present")
            continue
        for k in sorted(a.keys() | b.keys()):
            if a.get(k) != b.get(k):
                out[f"{what}.{k}"] = (a.get(k), b.get(k))
    return out


async def diff(live_url: str, live_key: str, shadow_url: str, shadow_key: str,
               customers, ends: dict, concurrency: int = 16, shown: bool = False) -> dict:
    """{customer: {field: (live, shadow)}} for the customers whose answers differ."""
    gate = asyncio.Semaphore(concurrency)
    async with AsyncPersonaClient(live_url, live_key) as live, \
            AsyncPersonaClient(shadow_url, shadow_key) as shadow:
        with progress.bar("customers", len(customers), unit=" customers", enabled=shown) as bar:
            async def one(cid):
                async with gate:
                    found = fields_differing(await answers(live, cid, ends),
                                             await answers(shadow, cid, ends))
                bar.update()
                return cid, found
            results = await asyncio.gather(*(one(cid) for cid in sorted(customers)))
    return {cid: fields for cid, fields in results if fields}


async def compare(app_root: Path, live_url: str, live_key: str, name: str, workdir: Path,
                  timeout: float = 300.0, broker_url: str = settings.broker_url,
                  compat: bool = settings.local_broker_compat, shown: bool = False) -> dict:
    bootstrap = _bootstrap(broker_url)
    ends, customers = await snapshot(bootstrap, compat, shown)
    key = secrets.token_urlsafe(24)
    workdir.mkdir(parents=True, exist_ok=True)
    worker = Worker(None, workdir / "shadow.log", data_dir=workdir / "data",
                    env=shadow_env(name, key, broker_url, compat), root=app_root)
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready, timeout)
        group = app_id(name)
        await logread.wait_committed(bootstrap, group, EVENTS, ends, timeout)
        changed = await diff(live_url, live_key, worker.url, key, customers, ends, shown=shown)
        if changed:  # again at fresh ends: drop differences made by live events in flight
            fresh, _ = await snapshot(bootstrap, compat)
            await logread.wait_committed(bootstrap, group, EVENTS, fresh, timeout)
            await logread.wait_committed(bootstrap, LIVE_APP_ID, EVENTS, fresh, timeout)
            changed = await diff(live_url, live_key, worker.url, key, changed, fresh)
    finally:
        worker.stop()
    return {"app_id": app_id(name), "ends": ends, "customers": len(customers),
            "changed": changed}


def print_summary(result: dict, examples: int = 5, out=sys.stdout) -> None:
    changed = result["changed"]
    print(f"shadow {result['app_id']}: {result['customers']} customers on events up to "
          f"{ {p: e for p, e in sorted(result['ends'].items())} }", file=out)
    print(f"customers changed: {len(changed)} of {result['customers']}", file=out)
    per_field = Counter(f for fields in changed.values() for f in fields)
    for name, n in sorted(per_field.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name}: {n} customer(s)", file=out)
    for cid in sorted(changed)[:examples]:
        for name, (live, shadow) in changed[cid].items():
            print(f"example {cid} {name}: live {short(live)} shadow {short(shadow)}", file=out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-root", required=True, type=Path, help="the candidate checkout")
    parser.add_argument("--live-url", default=f"http://127.0.0.1:{settings.web_port}",
                        help="any live worker (reads are routed to the owner)")
    parser.add_argument("--api-key", default=os.environ.get("PERSONA_READ_KEY", ""),
                        help="a read key of the live workers (default: $PERSONA_READ_KEY)")
    parser.add_argument("--name", default=f"run{int(time.time())}",
                        help="shadow name: app id persona-shadow-<name> (default: run<unix time>)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wait")
    parser.add_argument("--examples", type=int, default=5, help="customers shown in full")
    parser.add_argument("--keep", action="store_true", help="keep the shadow's data dir and log")
    args = parser.parse_args(argv)
    root = args.app_root.resolve()
    if not any((root / path).is_file() for path in SHADOW_AWARE):
        raise SystemExit(f"persona-shadow: {root} has no app/consistency/shadow.py (nor "
                         "app/shadow.py, where versions before it kept it): it cannot run as "
                         "a shadow app and would write to the live topics")
    if not args.api_key:
        raise SystemExit("persona-shadow: pass --api-key (or set PERSONA_READ_KEY)")
    workdir = Path(tempfile.mkdtemp(prefix="persona-shadow-"))
    try:
        result = asyncio.run(compare(root, args.live_url, args.api_key, args.name, workdir,
                                     args.timeout, shown=True))
    except (TimeoutError, RuntimeError) as exc:
        print(f"persona-shadow: cannot compare: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"shadow data dir and log kept in {workdir}", file=sys.stderr)
    print_summary(result, args.examples)
    raise SystemExit(1 if result["changed"] else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
