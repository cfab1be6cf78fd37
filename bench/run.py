"""``make bench``: Persona's throughput, lookup and recovery figures against their limits.

``make bench BROKER=kafka`` adds ``--kafka``: the same events through 1 and 2 workers on one
local Apache Kafka node (and the 1-worker recovery), in the same table, with the broker's
CPU per event (the JVM shares the 2 cores with the workers).

    .venv/bin/python -m bench.run [--quick] [--events N] [--customers N] [--repeat N]
                                  [--lookup-seconds S] [--skip PHASES] [--profile] [--kafka]
                                  [--worker-env NAME=VALUE] [--app-root DIR] [--label TEXT]

Every run starts its own bundled broker(s) and ``faust worker`` processes on free
ports (nothing else may be running on them; no fixed port is used). Phases, in order:
limits (pure functions), bare-aiohttp lookup limit, 1 worker with the local-broker
compatibility switch on (+ raw aiokafka consume baseline, + recovery), 1 worker with
it off (real-Kafka producer settings; + lookups idle, 304 vs 200, while ingesting),
"metrics off" (below), 2 workers on, 2 workers off; after the 1-worker compat-on run, the
naive-Faust baseline (bench/naive/app.py: same rules, per-event agent, two default-json
Tables) on a fresh broker with the same events, 1 worker, compat on; after the 1-worker
compat-off run (and with ``--kafka`` after the 1-worker Kafka run) the Quix Streams contender
(bench/quix/: the same rules in one stateful ``update``, one process, the ``bench`` extra) on
a fresh broker of that kind with the same events. After the 2-worker compat-on run (and the
2-worker Kafka run), a new pair with standby replicas (and, on Kafka, static membership)
restarts one worker and then kills it (bench/restart.py). ``--skip`` takes a comma list of:
on, off, two, lookups, recovery, naive, quix, freshness, pairs, metrics, restart.
Freshness (bench/freshness.py) and then the read-your-writes pairs (bench/pairs.py) run
on the 1-worker compat-on worker after the recovery.
"metrics off" (what metrics cost, target: metrics on <= 5 % slower): after
the 1-worker compat-off run (and its lookups), the same ingest, 1 worker, compat off, same
events, each on a fresh broker, ``--repeat`` times with ``PERSONA_METRICS=off`` in the
worker environment and as many times with metrics on, in the order on (the compat-off run
itself) off, off on, off on ... (``metrics_pairs``); the report sets the medians of
events/s and worker CPU per event with metrics on against off. CPU per event is the
primary figure: it does not depend on the machine's load, events/s does; one run's CPU
per event still varies by ~5 % here, hence the medians. It needs the compat-off run
(``--skip off`` skips it too) and checks that the worker honoured the switch (GET
/metrics answered 404).
``--profile`` records the 1-worker compat-off ingest with py-spy (needs root or
ptrace rights) into bench/results/profile-<time>.txt and prints its top functions
(that run then does not count as a metrics-on run);
also the idle lookups (…-lookups.txt), the compat-on ingest (…-on.txt) and the
recovery (…-on-recovery.txt).
``--worker-env`` passes settings to the workers (e.g. Faust's PRODUCER_LINGER=0.005)
and ``--app-root`` runs the workers from another checkout: both compare a lever
against the same events. The table goes to stdout and, as JSON, to
bench/results/<time>.json and latest.json. Figures are medians where repeated; the
"worker CPU us/event" in the log and JSON does not depend on machine load.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import freshness, gen, limits, load, pairs, recovery, report, restart, scenarios
from bench.profile import summary
from bench.quix import ingest as quix

IDLE_MS = 1800 * 1000  # SESSION_IDLE_S default
METRICS_OFF = {"PERSONA_METRICS": "off"}  # the "metrics" phase's worker setting


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2k customers, 40k events, 1 repeat")
    p.add_argument("--events", type=int)
    p.add_argument("--customers", type=int)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--repeat", type=int, help="repeats of the cheap measurements (median)")
    p.add_argument("--lookup-seconds", type=float)
    p.add_argument("--skip", default="", help="comma list: on,off,two,lookups,recovery,naive,"
                   "quix,freshness,pairs,metrics")
    p.add_argument("--profile", action="store_true", help="py-spy the 1-worker ingest")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra worker environment, e.g. Faust's PRODUCER_LINGER=0.005")
    p.add_argument("--app-root", type=Path, default=scenarios.ROOT,
                   help="run the workers from another checkout (compare a branch)")
    p.add_argument("--label", default="", help="free text stored with the results")
    p.add_argument("--freshness-eps", type=float,
                   help="offer this fixed rate in the freshness phase (A/B of two trees) "
                        "instead of 80 %% of the worker's live maximum")
    p.add_argument("--keep", action="store_true", help="keep the worker/broker logs (tmp dir)")
    p.add_argument("--kafka", action="store_true",
                   help="also run 1 and 2 workers (and the recovery) on a local Apache Kafka "
                        "node (app/harness/kafka.py), reported beside the bundled broker's")
    a = p.parse_args(argv)
    a.events = a.events or (40_000 if a.quick else 200_000)
    a.customers = a.customers or (2_000 if a.quick else 10_000)
    a.repeat = a.repeat or (1 if a.quick else 3)
    a.lookup_seconds = a.lookup_seconds or (5.0 if a.quick else 10.0)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if "quix" not in a.skip and quix.installed() != quix.PIN:
        p.error(f"the Quix contender needs quixstreams=={quix.PIN} (found {quix.installed()}): "
                "pip install -e '.[bench]' (make bench does), or --skip quix")
    return a


def meta(args) -> dict:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except OSError:
        rev = ""
    return {"started": time.time(), "args": {k: (sorted(v) if isinstance(v, set) else v)
                                             for k, v in vars(args).items()},
            "cpus": os.cpu_count(), "label": args.label, "python": platform.python_version(), "git": rev,
            "load_tool": load.tool(), "loadavg_start": os.getloadavg()}


def metrics_pairs(ctx, repeat: int, res: dict) -> None:
    """``repeat`` ingests with PERSONA_METRICS=off and as many with metrics on,
    in the order on off, off on, off on ... (the first "on" is the 1w_off run unless py-spy
    slowed it), each on a fresh broker with the same events; medians of each side, since
    one run's CPU per event varies by ~5 % here."""
    ctx.profile = None
    runs: dict = {"on": [], "off": []}
    first = res["runs"].get("1w_off")
    order = ["off"] + ["off", "on"] * (repeat - 1)
    if first and not first.get("profiled"):
        runs["on"].append(first)
    else:
        order.append("on")
    for side in order:
        log(f"ingest: 1 worker, compat off, metrics {side} (PERSONA_METRICS={side}), same events")
        run = scenarios.ingest(ctx, False, 1, env={} if side == "on" else METRICS_OFF,
                               after=scenarios.metrics_answer)
        run["loadavg_after"] = os.getloadavg()
        runs[side].append(run)
    res["metrics_runs"] = runs
    res["metrics_on"], res["metrics_off"] = (report.median_run(runs["on"]),
                                             report.median_run(runs["off"]))


def main(argv=None) -> int:
    args = parse_args(argv)
    res: dict = {"meta": meta(args), "runs": {}}
    tmp = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    log(f"generating {args.events:,} events for {args.customers:,} customers (seed {args.seed})")
    records = gen.generate(args.customers, args.events, args.seed)
    res["mix"] = gen.mix(records)
    customers = sorted({k.decode() for k, _ in records})
    ids = random.Random(args.seed).sample(customers, min(500, len(customers)))
    profile = None
    if args.profile:
        profile = report.RESULTS / f"profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    ctx = scenarios.Ctx(tmp=tmp, records=records, customers=args.customers,
                        partitions=args.partitions, repeat=args.repeat,
                        lookup_s=args.lookup_seconds, ids=ids, profile=profile, log=log,
                        worker_env=dict(e.split("=", 1) for e in args.worker_env),
                        app_root=args.app_root.resolve(), freshness_eps=args.freshness_eps)
    try:
        log("limits: parse, pure state apply (no Kafka, no Faust)")
        lim = limits.measure(records, IDLE_MS, args.repeat)
        body = lim.pop("sample_view")
        res["limits"] = lim
        log(f"  parse {lim['parse_eps']:,.0f}/s; state {lim['state_eps']:,.0f}/s")
        if "lookups" not in args.skip:
            log(f"lookup limit: bare aiohttp ({load.tool()}, 16 connections)")
            res["bare"], res["bare_busy"] = scenarios.bare_limit(ctx, body)
            log(f"  {res['bare']['rps']:,.0f} req/s p99 {res['bare']['p99_ms']:.1f} ms; with a "
                f"core kept busy by another process: {res['bare_busy']['rps']:,.0f} req/s p99 "
                f"{res['bare_busy']['p99_ms']:.1f} ms")
        plan = [("1w_on", True, 1), ("naive", True, 1), ("1w_off", False, 1), ("quix", False, 1),
                ("2w_on", True, 2), ("2w_off", False, 2)]
        if args.kafka:
            plan += [("1w_kafka", False, 1), ("quix_kafka", False, 1), ("2w_kafka", False, 2)]
        for key, compat, workers in plan:
            if key.startswith("quix"):
                if "quix" not in args.skip:
                    kind = "kafka" if key.endswith("_kafka") else "tansu"
                    log(f"ingest: Quix Streams contender, 1 worker, {kind}")
                    res[key] = quix.ingest(ctx, kind)
                    res[key]["loadavg_after"] = os.getloadavg()
                continue
            if key.endswith("_kafka"):
                if workers == 2 and "two" in args.skip:
                    continue
                log(f"ingest: {workers} worker(s), Apache Kafka (one local node)")
                ctx.profile = None
                if workers == 2:
                    after = None if "restart" in args.skip else restart.restarts(ctx, False, True)
                else:
                    after = None if "recovery" in args.skip else recovery.recovery(ctx)
                res["runs"][key] = scenarios.ingest(ctx, False, workers, after=after, kind="kafka")
                res["runs"][key]["loadavg_after"] = os.getloadavg()
                continue
            if key == "naive":
                if "naive" not in args.skip:
                    log("ingest: naive Faust baseline, 1 worker, compat on")
                    ctx.profile = None
                    res["naive"] = scenarios.ingest(ctx, compat, workers, naive=True)
                continue
            if ("on" if compat else "off") in args.skip or (workers == 2 and "two" in args.skip):
                continue
            after = None
            if key == "1w_on":
                after = scenarios.chain(
                    None if "recovery" in args.skip else recovery.recovery(ctx),
                    None if "freshness" in args.skip else freshness.freshness(
                        ctx, max(10.0, 2 * args.lookup_seconds)),
                    None if "pairs" in args.skip else pairs.pairs(
                        ctx, max(10.0, 2 * args.lookup_seconds)))
            if key == "1w_off" and "lookups" not in args.skip:
                after = scenarios.lookups(ctx)
            if key == "2w_on" and "restart" not in args.skip:
                # compat on: a restart with its data needs the switch's true end offsets here
                after = restart.restarts(ctx, True, False)
            log(f"ingest: {workers} worker(s), compat {'on' if compat else 'off'}")
            ctx.profile = None
            if profile and key == "1w_off":
                ctx.profile = profile
            elif profile and key == "1w_on":  # its ingest and the recovery
                ctx.profile = profile.with_name(profile.stem + "-on.txt")
            res["runs"][key] = scenarios.ingest(ctx, compat, workers,
                                                raw_baseline=(key == "1w_on"), after=after)
            res["runs"][key]["loadavg_after"] = os.getloadavg()
            res["runs"][key]["profiled"] = bool(ctx.profile)
            if key == "1w_off" and "metrics" not in args.skip:
                metrics_pairs(ctx, args.repeat, res)
    finally:
        if args.keep:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res["meta"]["loadavg_end"] = os.getloadavg()
    res["meta"]["seconds"] = time.time() - res["meta"]["started"]
    res["table"] = report.rows(res)
    if profile and profile.exists():
        res["profile"] = {"file": str(profile), **summary(profile)}
    path = report.write(res)
    print()
    print(f"Persona benchmark: {args.events:,} events, {args.customers:,} customers, "
          f"{args.partitions} partitions, {os.cpu_count()} CPUs, load avg "
          f"{res['meta']['loadavg_start'][0]:.1f} -> {res['meta']['loadavg_end'][0]:.1f}, "
          f"{res['meta']['seconds'] / 60:.1f} min")
    print(report.table(res["table"]))
    if "profile" in res:
        print("\npy-spy, 1 worker compat off, top self time:")
        for name, pct in res["profile"]["self"][:15]:
            print(f"  {pct:5.1f}%  {name}")
    print(f"\nwritten: {path} and {report.RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
