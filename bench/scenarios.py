"""The measured scenarios, each on a fresh bundled broker with a fresh ``events`` topic.

End-to-end ingest: ``events`` is pre-filled (batched producer), then the workers start.
Completion is detected by the Faust group's committed offsets on ``events`` reaching
the per-partition counts this run produced (never ListOffsets: wrong for batched
producers on this broker), then by the changelogs' high watermarks staying still for
2 s (Faust may commit before its producer buffer is empty, see
``kafka.settled_changelogs``). The figures then come from the changelogs themselves: start = earlier of "first /ready 200" and the first changelog record's
timestamp, end = the last changelog record's timestamp (producer create time, same
clock); records = the changelogs' fetch high watermarks (correct on this broker).
"""
from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.harness.net import http
from bench import bare, gen, kafka, load, logparse, procs
from bench.procs import API_KEY, ROOT, Broker, Worker, cpu_seconds, free_port, get, get_json


@dataclass
class Ctx:
    tmp: Path
    records: list
    customers: int
    partitions: int
    repeat: int
    lookup_s: float
    ids: list = field(default_factory=list)
    profile: Path | None = None
    worker_env: dict = field(default_factory=dict)
    app_root: Path = ROOT
    log: callable = print
    freshness_eps: float | None = None  # a fixed offered rate instead of 80 % of the max


def _consumed(b: Broker, ends: dict, workers: list[Worker], timeout: float,
              group: str = kafka.GROUP) -> float:
    def alive() -> bool:
        return all(w.alive() for w in workers)

    return asyncio.run(kafka.wait_consumed(b.bootstrap, "events", ends, timeout, alive, group))


SPY_EXTRA: list[str] = []  # e.g. ["--gil"]: only samples holding the GIL


def _spy(pid: int, out: Path) -> subprocess.Popen:
    """py-spy record (raw collapsed stacks: load into speedscope or flamegraph.pl)."""
    import shutil
    import sys
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "--format", "raw", "--threads", *SPY_EXTRA, "-r", "100",
                             "-o", str(out),
                             "--pid", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)


def ingest(ctx: Ctx, compat: bool, workers: int, raw_baseline: bool = False,
           after=None, naive: bool = False, env: dict | None = None, kind: str = "tansu") -> dict:
    """Persona's workers, or with ``naive`` the naive-Faust baseline (bench/naive/app.py).
    ``env``: settings on top of ``ctx.worker_env`` for this run only (named in the label).
    ``kind``: the broker (``kafka``: one local Apache Kafka node; the switch is then off)."""
    n = len(ctx.records)
    label = f"{workers} worker{'s' if workers > 1 else ''}, " + (
        "Apache Kafka" if kind == "kafka" else f"compat {'on' if compat else 'off'}")
    label += "".join(f", {k}={v}" for k, v in (env or {}).items())
    worker_env = {**ctx.worker_env, **(env or {})}
    group, changelogs = ((kafka.NAIVE_GROUP, kafka.NAIVE_CHANGELOGS) if naive
                         else (kafka.GROUP, kafka.CHANGELOGS))
    if naive:
        label = f"naive Faust, {label}"
    with Broker(ctx.tmp, kind) as b:
        ends, secs = asyncio.run(kafka.prefill(b.bootstrap, "events", ctx.records,
                                               ctx.partitions))
        out = {"label": label, "events": n, "prefill_eps": n / secs}
        if raw_baseline:
            runs = [asyncio.run(kafka.raw_consume(b.bootstrap, "events", ends))
                    for _ in range(ctx.repeat)]
            out["raw_consume_eps"] = statistics.median(runs)
            out["raw_consume_runs"] = [round(r) for r in runs]
        ws = [(procs.NaiveWorker(b, ctx.tmp, compat, ctx.partitions, worker_env) if naive else
               Worker(b, ctx.tmp, compat, ctx.partitions, worker_env, ctx.app_root)).start()
              for _ in range(workers)]
        try:
            ready = [w.wait_ready() for w in ws]
            pids = [w.pid for w in ws] + [b.pid]
            cpu0 = [cpu_seconds(p) for p in pids]
            sys0 = cpu_seconds(ws[0].pid, system_only=True)
            spy = None
            if ctx.profile and workers == 1:
                spy = _spy(ws[0].pid, ctx.profile)
            ctx.log(f"  {label}: ready {ready[0] - ws[0].started:.1f}s after start; ingesting")
            done = _consumed(b, ends, ws, timeout=max(600, n / 100), group=group)
            cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
            sys_share = (cpu_seconds(ws[0].pid, system_only=True) - sys0) / max(cpu[0], 1e-3)
            if spy:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            stats = asyncio.run(kafka.settled_changelogs(b.bootstrap, topics=changelogs))
            # Faust's warning when its producer buffer holds more than it may (target 0).
            full = [logparse.count(w.log_text(), logparse.BUFFER_FULL) for w in ws]
            dlq = asyncio.run(kafka.changelog_stats(b.bootstrap, ("events-dlq",)))["records"]
            start = min(min(ready), stats["first_ts"] or min(ready))
            out.update({
                "ready_s": ready[0] - ws[0].started,
                "ready_all_s": [round(r - w.started, 2)
                                for r, w in zip(ready, ws, strict=True)],
                "active_partitions": [(get_json(f"{w.url}/ready")[1] or {}).get(
                    "active_partitions") for w in ws],
                "eps": n / (stats["last_ts"] - start),
                "span_eps": n / max(1e-3, stats["last_ts"] - stats["first_ts"]),
                "seconds": stats["last_ts"] - start,
                "detect_lag_s": done - stats["last_ts"],
                "changelog_records": stats["records"],
                "changelog_per_event": stats["records"] / n,
                "dlq_records": dlq,  # events the agent parked (should be 0 here)
                "producer_buffer_full": full,  # per worker, during start + ingest
                # CPU per event (noise-robust): workers summed, and the broker's share.
                "worker_cpu_us_per_event": 1e6 * sum(cpu[:-1]) / n,
                "broker_cpu_us_per_event": 1e6 * cpu[-1] / n,
                "worker_cpu_system_share": sys_share,
            })
            ctx.log(f"  {label}: {out['eps']:,.0f} events/s, "
                    f"{out['changelog_per_event']:.2f} changelog records/event, worker CPU "
                    f"{out['worker_cpu_us_per_event']:,.0f} us/event, broker "
                    f"{out['broker_cpu_us_per_event']:,.0f} us/event, producer buffer full "
                    f"{'/'.join(map(str, full))}x")
            if after:
                out.update(after(b, ws, out))
        finally:
            for w in ws:
                w.stop()
    return out


def chain(*steps):
    """One ``after`` step running ``steps`` (None ones skipped) in order, or None."""
    steps = [s for s in steps if s]
    if not steps:
        return None

    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        got: dict = {}
        for step in steps:
            got.update(step(b, ws, {**done, **got}))
        return got
    return run


def metrics_answer(b: Broker, ws: list[Worker], done: dict) -> dict:
    """``after`` step of the metrics-off run: the status of GET /metrics (404 when the
    worker honoured PERSONA_METRICS=off; 200 means the comparison compared nothing)."""
    return {"metrics_answer": get(f"{ws[0].url}/metrics", API_KEY)}


def events_taken(w: Worker) -> float:
    """``persona_events_total`` summed over outcomes and types, from the worker's /metrics."""
    status, text = http("GET", f"{w.url}/metrics", API_KEY)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("persona_events_total{"))


def lookups(ctx: Ctx):
    """Idle lookups, then lookups while the worker ingests a further batch."""
    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        w = ws[0]
        ids = [i for i in ctx.ids if get(f"{w.url}{load.PATH.format(i)}", API_KEY) == 200]
        spy = _spy(w.pid, ctx.profile.with_name(ctx.profile.stem + "-lookups.txt")) \
            if ctx.profile else None
        idle = load.median_run(w.url, ids, API_KEY, ctx.lookup_s, ctx.repeat)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        ctx.log(f"  lookups idle: {idle['rps']:,.0f} req/s p99 {idle['p99_ms']:.1f} ms")
        # Conditional reads: the same load, 200 then 304 (If-None-Match), aiohttp.
        cond = load.conditional(w.url, ids, API_KEY, ctx.lookup_s)
        if "304" in cond:
            ctx.log(f"  lookups 200 / 304 (If-None-Match, aiohttp): {cond['200']['rps']:,.0f} / "
                    f"{cond['304']['rps']:,.0f} req/s, p99 {cond['200']['p99_ms']:.1f} / "
                    f"{cond['304']['p99_ms']:.1f} ms; not 304: {cond['304']['non_2xx']}")
        n_extra = max(len(ctx.records) // 4, int(3000 * ctx.lookup_s))
        extra = gen.generate(ctx.customers, n_extra, seed=8,
                             start_ms=gen.START_MS + len(ctx.records) * gen.STEP_MS)
        asyncio.run(kafka.prefill(b.bootstrap, "events", extra, ctx.partitions))
        # Events the worker applied meanwhile, from its own counter (GET /metrics): changelog
        # records would miss them, the write-back flushes only every few seconds.
        before = events_taken(w)
        t0 = time.time()
        busy = load.run(w.url, ids, API_KEY, ctx.lookup_s)
        t1 = time.time()
        after_ = events_taken(w)
        time.sleep(1.0)
        still = events_taken(w) > after_
        busy["ingest_eps"] = (after_ - before) / (t1 - t0)
        busy["ingesting_throughout"] = still
        ctx.log(f"  lookups while ingesting: {busy['rps']:,.0f} req/s p99 "
                f"{busy['p99_ms']:.1f} ms, ingest {busy['ingest_eps']:,.0f} events/s")
        return {"lookups_idle": idle, "lookups_ingesting": busy, "lookup_ids": len(ids),
                "lookups_conditional": cond}
    return run


def bare_limit(ctx: Ctx, body: dict) -> tuple[dict, dict]:
    """The bare handler's lookups idle, then while another process keeps a core busy.

    The second is what the machine gives a server that shares it with work of a core's
    size: the reference for Persona's lookups while it ingests (its one process does both,
    so it cannot do better than this)."""
    port = free_port()
    proc = bare.start(port, body, ctx.tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        idle = load.median_run(url, ctx.ids, API_KEY, ctx.lookup_s, ctx.repeat)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy = load.run(url, ctx.ids, API_KEY, ctx.lookup_s)
        finally:
            hog.kill()
            hog.wait(10)
        return idle, busy
    finally:
        proc.terminate()
        proc.wait(10)
