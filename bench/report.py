"""One table of figures and ratios (ours / limit), printed and written as JSON."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from bench.quix import report as quix

RESULTS = Path(__file__).resolve().parent / "results"

#: Targets (per worker, real-Kafka producer settings), shown as notes.
TARGETS = {
    "ingest_off": ">= 6,000 events/s",
    "two_off": ">= 1.6x one worker",
    "idle_rps": ">= 0.9 x bare aiohttp",
    "idle_p99": "<= 3 ms",
    "busy_p99": "<= 5 ms",
    "restore": ">= 50,000 records/s",
    "ready_after_join": "<= 15 s",  # target
    "buffer_full": "target 0",  # target
    "freshness": "p99 <= 1 s at 80 % of max throughput",
    "metrics": "metrics on <= 5 % slower",  # target
    "restart_ready": "target <= 5 s on Apache Kafka",
}
RESTART_READY_S = 5.0
METRICS_SLOWER_MAX = 0.05
READY_AFTER_JOIN_S = 15.0
FRESHNESS_P99_S = 1.0


def _row(rows, name, ours, limit=None, unit="", note=""):
    ratio = (ours / limit) if (ours is not None and limit) else None
    rows.append({"figure": name, "ours": ours, "limit": limit, "ratio": ratio, "unit": unit,
                 "note": note})


def rows(res: dict) -> list[dict]:
    out: list[dict] = []
    lim = res.get("limits", {})
    state = lim.get("state_eps")
    runs = res.get("runs", {})
    one = {k: runs.get(f"1w_{k}", {}).get("eps") for k in ("on", "off", "kafka")}
    for key, r in runs.items():
        workers, compat = key.split("_")
        if workers == "1w":
            note = {"off": TARGETS["ingest_off"], "on": "what make run gives",
                    "kafka": "one local Apache Kafka node"}[compat]
            if r.get("profiled"):
                note += "; py-spy attached (slows it)"
            _row(out, f"ingest e2e, {r['label']}", r["eps"], state, "events/s",
                 f"limit: pure state; {note}")
        else:
            base = one.get(compat)
            note = "limit: 2x one worker"
            if base:
                note += f"; scaling x{r['eps'] / base:.2f}"
            if compat == "off":
                note += "; " + TARGETS["two_off"]
            _row(out, f"ingest e2e, {r['label']}", r["eps"], 2 * base if base else None,
                 "events/s", note)
        if r.get("worker_cpu_us_per_event") and state:
            _row(out, f"worker CPU per event, {r['label']}", r["worker_cpu_us_per_event"],
                 1e6 / state, "us", f"limit: pure state apply (parse adds "
                 f"{1e6 / lim['parse_eps']:,.0f}); load-independent; broker "
                 f"{r['broker_cpu_us_per_event']:,.0f} us/event more")
        _row(out, f"changelog records/event, {r['label']}", r["changelog_per_event"],
             lim.get("min_writes_per_event"), "records",
             "limit: one write per changed customer per 500-event batch")
        _buffer_full(out, r)
    _naive(out, res.get("naive"), runs.get("1w_on"))
    for row in quix.rows(res):  # the Quix Streams contender, Persona ÷ Quix
        _row(out, *row)
    _metrics_cost(out, res.get("metrics_on") or runs.get("1w_off"), res.get("metrics_off"))
    if "raw_consume_eps" in runs.get("1w_on", {}):
        _row(out, "raw aiokafka consume (baseline)", runs["1w_on"]["raw_consume_eps"], None,
             "msgs/s")
    if lim:
        _row(out, "parse + validate only (baseline)", lim["parse_eps"], None, "events/s")
        _row(out, "pure state apply (the limit)", state, None, "events/s",
             f"+orjson encode of changed values: {lim['state_json_eps']:,.0f}/s")
    bare = res.get("bare")
    look = runs.get("1w_off", {})
    if "lookups_idle" in look:
        idle, busy = look["lookups_idle"], look["lookups_ingesting"]
        _row(out, "lookups idle, req/s", idle["rps"], bare and bare["rps"], "req/s",
             f"limit: bare aiohttp; {TARGETS['idle_rps']}; load from "
             f"{idle.get('tool', '-')}, 16 connections")
        _row(out, "lookups idle, p50", idle["p50_ms"], bare and bare["p50_ms"], "ms")
        _row(out, "lookups idle, p99", idle["p99_ms"], bare and bare["p99_ms"], "ms",
             TARGETS["idle_p99"])
        hogged = res.get("bare_busy") or bare
        note = "limit: bare aiohttp" + (", a core kept busy by another process"
                                         if res.get("bare_busy") else "")
        _row(out, "lookups while ingesting, req/s", busy["rps"], hogged and hogged["rps"],
             "req/s", note)
        _row(out, "lookups while ingesting, p99", busy["p99_ms"], hogged and hogged["p99_ms"],
             "ms", f"{note}; {TARGETS['busy_p99']}")
        _row(out, "ingest while serving lookups", busy["ingest_eps"], one.get("off"),
             "events/s", "limit: ingest alone" +
             ("" if busy["ingesting_throughout"] else "; ingest ended inside the window"))
    if "lookups_conditional" in look:
        _conditional(out, look["lookups_conditional"])
    _recovery(out, runs.get("1w_on", {}).get("recovery"))
    _recovery(out, runs.get("1w_kafka", {}).get("recovery"), " (Apache Kafka)")
    _restart(out, runs.get("2w_on", {}).get("restart"), "bundled broker")
    _restart(out, runs.get("2w_kafka", {}).get("restart"), "Apache Kafka")
    _freshness(out, runs.get("1w_on", {}).get("freshness"))
    _pairs(out, runs.get("1w_on", {}).get("pairs"))
    return out


def _restart(out, r: dict | None, broker: str) -> None:
    """One of two workers (static membership, a standby each) restarted, then killed."""
    if not r or "restart" not in r:
        return
    rs, fo = r["restart"], r["failover"]
    _row(out, f"restart one of 2 workers to /ready ({broker})", rs["start_to_ready_s"],
         RESTART_READY_S, "s", ("static membership" if rs.get("static", True) else
                                "dynamic membership (the broker keeps no static members)")
         + f"; {rs['stop_to_ready_s']:.1f}s from its stop; "
         f"the other {'REBALANCED' if rs['other_rebalanced'] else 'kept serving (no rebalance)'}"
         f"; {rs['not_200']} of {rs['reads']} sampled reads not 200, for "
         f"{rs['longest_not_200_s']:.1f}s at most; {TARGETS['restart_ready']}")
    _row(out, f"kill -9 one of 2 workers to served by the other ({broker})",
         fo["all_answer_s"], fo["bound_s"], "s", "standby replicas 1; limit: group session "
         f"timeout + 2 s; {fo['not_200']} of {fo['reads']} sampled reads not 200 meanwhile")


def _pairs(out, p: dict | None) -> None:
    """POST one event -> GET with its token answered 200, at half of max throughput."""
    if not p or not p.get("pairs"):
        return
    note = (f"1 worker compat on; {p['rate_sent']:,.0f} events/s background (50 % of "
            f"{p['max_eps']:,.0f}); {p['pairs']} pairs from {p['clients']} clients, "
            f"{p['not_yet_503']} 503s retried, {p['failures']} answers missing their write")
    _row(out, "read-your-writes pair (POST -> GET ?after=), p50", p["p50_s"], None, "s", note)
    _row(out, "read-your-writes pair (POST -> GET ?after=), p99", p["p99_s"], None, "s")


def steady_note(f: dict) -> str:
    steady = f.get("steady")
    if not steady:
        return ""
    live = f.get("live")
    head = (f", the worker's maximum while the load generator offered "
            f"{live['offered_eps']:,.0f}/s, at {live['worker_cpu_us_per_event']:.0f} us/event; "
            f"on a drained backlog: {steady['eps']:,.0f}" if live else
            ", the worker's maximum on a backlog")
    return (f"{head} of {steady['events']:,} more events at "
            f"{steady['worker_cpu_us_per_event']:.0f} us/event; its ingest from empty state: "
            f"{f['ingest_eps']:,.0f}")


def _freshness(out, f: dict | None) -> None:
    if not f:
        return
    note = (f"1 worker compat on; {f['rate_sent']:,.0f} events/s sent for {f['seconds']:.0f}s "
            f"(offered {f['rate_offered']:,.0f} = {f['rate_offered'] / f['max_eps']:.0%} of "
            f"{f['max_eps']:,.0f}{steady_note(f)}); "
            f"{f['seen']} probes, {f['unseen']} not readable in 30 s, {f.get('stale', 0)} stale; "
            f"one waiting read each (?after=, wait_ms {f.get('wait_ms', '-')}); limit column: {TARGETS['freshness']}")
    _row(out, "freshness: Kafka timestamp to readable, p99", f["p99_s"], FRESHNESS_P99_S, "s",
         note)
    half = ""
    if f.get("p50_second_half_s") is not None:
        half = (f"first / second half of the probes: {f['p50_first_half_s']:.2f} / "
                f"{f['p50_second_half_s']:.2f} s (a growing backlog: second slower)")
    _row(out, "freshness: Kafka timestamp to readable, p50", f["p50_s"], None, "s", half)
    sus = f.get("sustained")
    if sus:
        tried = "; ".join(f"{t['share']:.0%}: {t['rate_sent']:,.0f}/s p99 "
                          + (f"{t['p99_s']:.2f} s" if t["p99_s"] is not None else "-")
                          for t in sus["tried"])
        ours = sus["rate_sent"] if sus["share"] is not None else None
        _row(out, "freshness: highest rate tried with p99 <= 1 s", ours, f["rate_offered"],
             "events/s", f"shares of the worker's live maximum tried after 80 % missed: "
             f"{tried}; limit column: the 80 % rate")
    raw = f.get("raw")
    if raw and raw.get("p99_s") is not None:
        _row(out, "freshness baseline: bare consumer lag, p99", raw["p99_s"], FRESHNESS_P99_S,
             "s", f"same rate and broker, plain aiokafka consumer busy-waiting "
             f"{raw['cost_us']:.0f} us/record (the worker's CPU per event), "
             f"{raw['busy_share']:.0%} busy; p50 {raw['p50_s']:.3f} s (bench/rawlive.py)")


def _buffer_full(out, r: dict) -> None:
    full = r.get("producer_buffer_full")
    if full is not None:
        _row(out, f"producer buffer full warnings, {r['label']}", sum(full), None, "lines",
             f"Faust's warning in the worker log(s) during start + ingest"
             f" ({' / '.join(map(str, full))} per worker); {TARGETS['buffer_full']}")


def _naive(out, naive: dict | None, ours: dict | None) -> None:
    """The naive-Faust contender's rows, and Persona ÷ naive from the same run."""
    if not naive:
        return
    _row(out, f"ingest e2e, {naive['label']} (baseline)", naive["eps"], None, "events/s",
         "bench/naive/app.py: same rules, per-event agent, two default-json Tables")
    _row(out, f"worker CPU per event, {naive['label']}", naive["worker_cpu_us_per_event"],
         None, "us")
    _row(out, f"changelog records/event, {naive['label']}", naive["changelog_per_event"],
         None, "records")
    _buffer_full(out, naive)
    if ours:
        _row(out, "Persona ÷ naive, events/s (1 worker, compat on)", ours["eps"],
             naive["eps"], "events/s", "ours: Persona; limit column: naive Faust; >1 = faster")
        _row(out, "Persona ÷ naive, worker CPU per event", ours["worker_cpu_us_per_event"],
             naive["worker_cpu_us_per_event"], "us", "<1 = less CPU than naive Faust")


def median_run(runs: list) -> dict:
    """The median events/s and CPU per event of several runs of one ingest, with the
    number of runs; ``metrics_answer``: the first one that is not 404, if any."""
    answers = [r.get("metrics_answer") for r in runs]
    cpu = [r["worker_cpu_us_per_event"] for r in runs if r.get("worker_cpu_us_per_event")]
    return {"eps": statistics.median(r["eps"] for r in runs),
            "worker_cpu_us_per_event": statistics.median(cpu) if cpu else None,
            "runs": len(runs), "metrics_answer": next((a for a in answers if a != 404), 404),
            "profiled": any(r.get("profiled") for r in runs)}


def _metrics_cost(out, on: dict | None, off: dict | None) -> None:
    """the 1-worker compat-off ingest with metrics on against the same ingest
    with PERSONA_METRICS=off (same events, fresh broker, run right after). Ratios on ÷ off:
    events/s >= 0.95 and CPU per event <= 1.05 meet the target."""
    if not on or not off:
        return
    warn = ""
    if off.get("metrics_answer") != 404:
        warn = (f"; NOT A COMPARISON: the off worker's GET /metrics answered "
                f"{off.get('metrics_answer')}, not 404")
    if on.get("profiled"):
        warn += "; the metrics-on run had py-spy attached (slows it)"
    eps = on["eps"] / off["eps"]
    _row(out, "metrics on ÷ off, ingest events/s", on["eps"], off["eps"], "events/s",
         f"1 worker compat off, same events, fresh broker each, median of {off.get('runs', 1)} "
         f"run(s) each, order on off off on; ours: metrics on, limit "
         f"column: off; metrics on {eps - 1:+.1%} events/s; {TARGETS['metrics']} (ratio >= "
         f"{1 - METRICS_SLOWER_MAX:.2f}){warn}")
    if on.get("worker_cpu_us_per_event") and off.get("worker_cpu_us_per_event"):
        cpu = on["worker_cpu_us_per_event"] / off["worker_cpu_us_per_event"]
        _row(out, "metrics on ÷ off, worker CPU per event", on["worker_cpu_us_per_event"],
             off["worker_cpu_us_per_event"], "us",
             f"the primary figure (load-independent); metrics on {cpu - 1:+.1%} CPU per "
             f"event; {TARGETS['metrics']} (ratio <= {1 + METRICS_SLOWER_MAX:.2f}){warn}")


def _conditional(out, cond: dict) -> None:
    if "304" not in cond:
        _row(out, "lookups 304 (If-None-Match)", None, None, "req/s",
             f"no id answered 304 to its ETag ({cond.get('etag_failures')} tried)")
        return
    plain, hit = cond["200"], cond["304"]
    note = (f"aiohttp client both runs, {cond['ids']} ids; limit column: the same load "
            f"without If-None-Match (200 + body)")
    _row(out, "lookups 304 (If-None-Match), req/s", hit["rps"], plain["rps"], "req/s",
         note + f"; answers not 304: {hit['non_2xx']}")
    _row(out, "lookups 304, p50", hit["p50_ms"], plain["p50_ms"], "ms")
    _row(out, "lookups 304, p99", hit["p99_ms"], plain["p99_ms"], "ms")


def _recovery(out, rec: dict | None, on: str = "") -> None:
    if not rec or "restore_s" not in rec:
        return
    _row(out, "recovery: start to /ready" + on, rec["ready_s"], rec["empty_start_s"], "s",
         f"limit: start with empty changelogs; group join took {rec['assigned_s']:.1f}s")
    _row(out, "recovery: start to sample answering" + on, rec["answers_s"], None, "s")
    join = rec.get("ready_after_join_s")
    source = rec.get("restore_source", "Faust restore marks")
    cpu = (f"; CPU worker {rec['worker_cpu_s']:.0f}s, broker {rec['broker_cpu_s']:.0f}s"
           if "worker_cpu_s" in rec else "")
    _row(out, "recovery: records/s, ready after join" + on, rec["records_per_s"], None,
         "records/s", f"{rec['records']:,} records in {rec['restore_s']:.1f}s ({source}); "
         + (f"/ready {join:.1f}s after group join; " if join is not None else "")
         + TARGETS["restore"] + cpu)
    if join is not None:
        _row(out, "recovery: group join to /ready" + on, join, READY_AFTER_JOIN_S, "s",
             f"limit column: target {TARGETS['ready_after_join']}")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


def table(rs: list[dict]) -> str:
    head = ("figure", "ours", "limit", "ours/limit", "unit", "note")
    body = [(r["figure"], _fmt(r["ours"]), _fmt(r["limit"]),
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["unit"], r["note"])
            for r in rs]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(5)]
    lines = []
    for i, line in enumerate([head, *body]):
        cells = [c.ljust(w) if j in (0, 4) else c.rjust(w)
                 for j, (c, w) in enumerate(zip(line, widths, strict=False))]
        lines.append("  ".join(cells) + "  " + line[5])
        if i == 0:
            lines.append("-" * (sum(widths) + 2 * 5 + 4))
    return "\n".join(lines)


def write(res: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(res["meta"]["started"]))
    text = json.dumps(res, indent=2, default=str)
    path = RESULTS / f"{stamp}.json"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


if __name__ == "__main__":  # python -m bench.report [results.json]: re-print a saved table
    import sys

    saved = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else RESULTS / "latest.json")
                       .read_text())
    print(table(rows(saved)))
