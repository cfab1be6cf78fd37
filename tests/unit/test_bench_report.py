"""bench: worker-log parsing (restore lines, marks, warnings) and the report's rows."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import faust.transport.producer
import pytest

from bench import logparse, report
from bench.recovery import figures

ROOT = Path(__file__).resolve().parents[2]


def at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


# Lines as the worker writes them (app/kafka/restore.py's format, Faust's own marks).
BULK = ("[2026-11-29 02:00:31,250] [4242] [INFO] bulk restore: 374000 changelog records "
        "in 6.80s (55000/s)")
BULK_CUT = ("[2026-11-29 02:00:20,000] [4242] [INFO] bulk restore: 1000 changelog records "
            "in 0.50s (2000/s); interrupted")
ASSIGNED = ("[2026-11-29 02:00:22,000] [4242] [INFO] [^---Fetcher]: Setting newly assigned "
            "partitions {TP(topic='events', partition=0)}")
FAUST_FROM = ("[2026-11-29 02:00:23,000] [4242] [INFO] [^---Recovery]: Restoring state from "
              "changelog topics...")
FAUST_DONE = ("[2026-11-29 02:00:33,500] [4242] [INFO] [^---Recovery]: Done reading from "
              "changelog topics")
FULL = "[2026-11-29 02:00:40,100] [4242] [WARNING] producer buffer full size 1001"


def test_line_time_and_marks():
    assert logparse.line_time(BULK) == at("2026-11-29 02:00:31,250")
    assert logparse.line_time("no stamp here") is None
    assert logparse.line_time("[garbage] x") is None
    text = "\n".join([ASSIGNED, FAUST_FROM, "plain line", FAUST_DONE])
    m = logparse.marks(text, logparse.ASSIGNED, logparse.RESTORE_FROM, logparse.RESTORE_DONE)
    assert m == {logparse.ASSIGNED: at("2026-11-29 02:00:22,000"),
                 logparse.RESTORE_FROM: at("2026-11-29 02:00:23,000"),
                 logparse.RESTORE_DONE: at("2026-11-29 02:00:33,500")}


def test_bulk_restore_line_matches_what_restore_py_logs():
    # The format string in app/kafka/restore.py, rendered like logging does.
    src = (ROOT / "app/kafka/restore.py").read_text()
    assert '"bulk restore: %d changelog records in %.2fs (%.0f/s)%s"' in src
    line = "bulk restore: %d changelog records in %.2fs (%.0f/s)%s" % (12, 0.5, 24, "")
    assert logparse.bulk_restores(f"[2026-11-29 02:00:31,250] [1] [INFO] {line}") == [
        {"records": 12, "seconds": 0.5, "interrupted": False,
         "at": at("2026-11-29 02:00:31,250")}]


def test_restore_window_sums_bulk_lines_and_ignores_faust_marks():
    text = "\n".join([ASSIGNED, BULK_CUT, FAUST_FROM, BULK, FAUST_DONE])
    w = logparse.restore_window(text, started=0.0, ready=1e10)
    assert w["source"] == "bulk restore line"
    assert (w["records"], w["restore_s"], w["runs"], w["interrupted"]) == (375000, 7.3, 2, 1)
    assert w["records_per_s"] == pytest.approx(375000 / 7.3)
    assert w["end"] == at("2026-11-29 02:00:31,250")


def test_restore_window_falls_back_to_faust_marks():
    text = "\n".join([ASSIGNED, FAUST_FROM, FAUST_DONE])
    w = logparse.restore_window(text, started=0.0, ready=1e10)
    assert w["source"] == "Faust restore marks" and w["records"] is None
    assert w["restore_s"] == pytest.approx(10.5)
    none = logparse.restore_window("nothing", started=100.0, ready=104.0)
    assert none["restore_s"] == 4.0 and none["source"].startswith("start to /ready")


def test_recovery_figures_keep_join_apart():
    started, ready = at("2026-11-29 02:00:10,000"), at("2026-11-29 02:00:32,000")
    f = figures("\n".join([ASSIGNED, BULK]), started, ready, changelog_records=999)
    assert f["assigned_s"] == pytest.approx(12.0)
    assert f["ready_after_join_s"] == pytest.approx(10.0)
    assert f["ready_s"] == pytest.approx(22.0)
    assert (f["records"], f["restore_s"]) == (374000, 6.8)
    assert f["records_per_s"] == pytest.approx(55000, rel=1e-3)
    old = figures("\n".join([ASSIGNED, FAUST_FROM, FAUST_DONE]), started, ready, 999)
    assert old["records"] == 999 and old["restore_source"] == "Faust restore marks"
    assert old["records_per_s"] == pytest.approx(999 / 10.5)


def test_buffer_full_count_uses_fausts_wording():
    faust_src = Path(faust.transport.producer.__file__).read_text()
    assert 'logger.warning(f"producer buffer full size' in faust_src
    assert logparse.count("\n".join([FULL, BULK, FULL, "x"])) == 2
    assert logparse.count(BULK) == 0


def run(label: str, eps: float, cpu: float, full=(0,)) -> dict:
    return {"label": label, "eps": eps, "worker_cpu_us_per_event": cpu,
            "broker_cpu_us_per_event": 50.0, "changelog_per_event": 0.25,
            "producer_buffer_full": list(full)}


def by_name(rows: list[dict]) -> dict:
    return {r["figure"]: r for r in rows}


def test_rows_buffer_full_per_run():
    res = {"runs": {"1w_on": run("1 worker, compat on", 4000.0, 150.0, (3, 1))}}
    row = by_name(report.rows(res))["producer buffer full warnings, 1 worker, compat on"]
    assert row["ours"] == 4 and "(3 / 1 per worker)" in row["note"]
    assert report._fmt(4) == "4" and report._fmt(0) == "0" and report._fmt(4.0) == "4.00"


RECOVERY = {"ready_s": 30.0, "empty_start_s": 7.0, "assigned_s": 20.0, "answers_s": 31.0,
            "ready_after_join_s": 10.0, "restore_s": 5.0, "records": 250_000,
            "records_per_s": 50_000.0, "restore_source": "bulk restore line"}


def test_rows_recovery_records_per_s_and_ready_after_join():
    res = {"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 150.0),
                              "recovery": RECOVERY}}}
    rows = by_name(report.rows(res))
    r = rows["recovery: records/s, ready after join"]
    assert r["ours"] == 50_000.0
    assert "250,000 records in 5.0s (bulk restore line)" in r["note"]
    assert "/ready 10.0s after group join" in r["note"]
    join = rows["recovery: group join to /ready"]
    assert (join["ours"], join["limit"]) == (10.0, 15.0) and join["ratio"] == pytest.approx(2 / 3)
    table = report.table(report.rows(res))
    assert "recovery: records/s, ready after join" in table and "50,000" in table
    # A saved result from before (no join figure): no join row, no crash.
    old = {k: v for k, v in RECOVERY.items() if k not in ("ready_after_join_s", "restore_source")}
    rows = by_name(report.rows({"runs": {"1w_on": {**run("x", 1.0, 1.0), "recovery": old}}}))
    assert "recovery: group join to /ready" not in rows
    assert "(Faust restore marks)" in rows["recovery: records/s, ready after join"]["note"]


def test_rows_persona_over_naive():
    res = {"runs": {"1w_on": run("1 worker, compat on", 4000.0, 150.0)},
           "naive": run("naive Faust, 1 worker, compat on", 800.0, 1200.0, (196,))}
    rows = by_name(report.rows(res))
    eps = rows["Persona ÷ naive, events/s (1 worker, compat on)"]
    assert (eps["ours"], eps["limit"], eps["ratio"]) == (4000.0, 800.0, 5.0)
    cpu = rows["Persona ÷ naive, worker CPU per event"]
    assert (cpu["ours"], cpu["limit"]) == (150.0, 1200.0)
    assert cpu["ratio"] == pytest.approx(0.125)
    assert rows["producer buffer full warnings, naive Faust, 1 worker, compat on"]["ours"] == 196
    assert rows["ingest e2e, naive Faust, 1 worker, compat on (baseline)"]["ours"] == 800.0
    assert rows["changelog records/event, naive Faust, 1 worker, compat on"]["ours"] == 0.25
    # Naive alone (--skip on): its rows, no ratio; neither: no naive row at all.
    alone = by_name(report.rows({"runs": {}, "naive": res["naive"]}))
    assert "ingest e2e, naive Faust, 1 worker, compat on (baseline)" in alone
    assert not any(name.startswith("Persona ÷ naive") for name in alone)
    assert not any("naive" in r["figure"] for r in report.rows({"runs": {
        "1w_on": run("1 worker, compat on", 4000.0, 150.0)}}))


def test_rows_persona_over_quix_on_each_broker():
    quix = {**run("Quix Streams 3.28.1, 1 worker, bundled broker", 14000.0, 76.0),
            "broker_cpu_us_per_event": 2.0}
    quix_kafka = {**run("Quix Streams 3.28.1, 1 worker, Apache Kafka", 13000.0, 70.0),
                  "broker_cpu_us_per_event": 17.0}
    res = {"runs": {"1w_off": run("1 worker, compat off", 7000.0, 133.0),
                    "1w_kafka": {**run("1 worker, Apache Kafka", 6500.0, 130.0),
                                 "broker_cpu_us_per_event": 23.0}},
           "quix": quix, "quix_kafka": quix_kafka}
    rows = by_name(report.rows(res))
    eps = rows["Persona ÷ Quix, events/s (bundled broker, 1 worker)"]
    assert (eps["ours"], eps["limit"], eps["ratio"]) == (7000.0, 14000.0, 0.5)
    assert "1 worker, compat off" in eps["note"]
    cpu = rows["Persona ÷ Quix, worker CPU per event (bundled broker)"]
    assert (cpu["ours"], cpu["limit"]) == (133.0, 76.0)
    assert cpu["ratio"] == pytest.approx(133 / 76)
    assert "Persona 50 us, Quix 2 us" in cpu["note"]
    kafka = rows["Persona ÷ Quix, worker CPU per event (Apache Kafka)"]
    assert (kafka["ours"], kafka["limit"]) == (130.0, 70.0)
    assert "Persona 23 us, Quix 17 us" in kafka["note"]
    assert rows["Persona ÷ Quix, events/s (Apache Kafka, 1 worker)"]["ratio"] == 0.5
    assert rows["ingest e2e, Quix Streams 3.28.1, 1 worker, bundled broker (contender)"][
        "ours"] == 14000.0
    assert rows["worker CPU per event, Quix Streams 3.28.1, 1 worker, Apache Kafka"][
        "ours"] == 70.0
    assert "Persona ÷ Quix, events/s (bundled broker, 1 worker)" in report.table(
        report.rows(res))
    # Quix alone (--skip off, no --kafka): its rows, no ratio; --skip quix: no Quix row.
    alone = by_name(report.rows({"runs": {}, "quix": quix}))
    assert "ingest e2e, Quix Streams 3.28.1, 1 worker, bundled broker (contender)" in alone
    assert not any(name.startswith("Persona ÷ Quix") for name in alone)
    assert not any("Quix" in r["figure"] for r in report.rows({"runs": res["runs"]}))


def test_rows_conditional_lookups_304_against_200():
    look = {"lookups_idle": {"rps": 3000.0, "p50_ms": 5.0, "p99_ms": 10.0},
            "lookups_ingesting": {"rps": 2000.0, "p99_ms": 20.0, "ingest_eps": 500.0,
                                  "ingesting_throughout": True},
            "lookups_conditional": {"ids": 400, "etag_failures": 0,
                                    "200": {"rps": 3000.0, "p50_ms": 5.0, "p99_ms": 10.0},
                                    "304": {"rps": 4500.0, "p50_ms": 3.0, "p99_ms": 6.0,
                                            "non_2xx": 2}}}
    res = {"runs": {"1w_off": {**run("1 worker, compat off", 4000.0, 150.0), **look}}}
    rows = by_name(report.rows(res))
    c = rows["lookups 304 (If-None-Match), req/s"]
    assert (c["ours"], c["limit"], c["ratio"]) == (4500.0, 3000.0, 1.5)
    assert "answers not 304: 2" in c["note"]
    assert (rows["lookups 304, p50"]["ours"], rows["lookups 304, p50"]["limit"]) == (3.0, 5.0)
    assert rows["lookups 304, p99"]["ratio"] == pytest.approx(0.6)
    res["runs"]["1w_off"]["lookups_conditional"] = {"ids": 0, "etag_failures": 7}
    rows = by_name(report.rows(res))
    assert "7 tried" in rows["lookups 304 (If-None-Match)"]["note"]


def test_freshness_percentile_and_rows():
    from app.rules.events import parse
    from bench.freshness import percentile, probe_event

    assert percentile([], 0.99) is None
    values = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(values, 0.50) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile(list(reversed(values)), 1.0) == 100.0 and percentile([3.0], 0.99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    ev = parse(probe_event("fresh-1-00001", 1_767_225_600_123))  # valid per the rules
    assert (ev["customer_id"], ev["ts"], ev["type"]) == ("fresh-1-00001", 1_767_225_600_123,
                                                         "product_view")
    f = {"rate_offered": 3200.0, "rate_sent": 3150.0, "seconds": 10.0, "max_eps": 4000.0,
         "probes": 100, "seen": 99, "unseen": 1, "p50_s": 0.2, "p99_s": 1.5, "poll_s": 0.025}
    rows = by_name(report.rows({"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 1.0),
                                                   "freshness": f}}}))
    p99 = rows["freshness: Kafka timestamp to readable, p99"]
    assert (p99["ours"], p99["limit"], p99["ratio"]) == (1.5, 1.0, 1.5)
    assert "3,150 events/s sent" in p99["note"] and "1 not readable" in p99["note"]
    assert rows["freshness: Kafka timestamp to readable, p50"]["ours"] == 0.2
    f.update(p50_first_half_s=0.1, p50_second_half_s=0.9)
    rows = by_name(report.rows({"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 1.0),
                                                   "freshness": f}}}))
    assert "0.10 / 0.90 s" in rows["freshness: Kafka timestamp to readable, p50"]["note"]
    f.update(ingest_eps=6000.0,
             steady={"events": 60000, "eps": 5000.0, "worker_cpu_us_per_event": 70.0},
             live={"offered_eps": 6250.0, "worker_cpu_us_per_event": 90.0})
    rows = by_name(report.rows({"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 1.0),
                                                   "freshness": f}}}))
    note = rows["freshness: Kafka timestamp to readable, p99"]["note"]
    assert "= 80% of 4,000, the worker's maximum while the load generator offered 6,250/s" in note
    assert "on a drained backlog: 5,000 of 60,000 more events at 70 us/event" in note
    f["sustained"] = {"share": 0.6, "rate_sent": 2390.0, "tried": [
        {"share": 0.7, "rate_sent": 2790.0, "p99_s": 1.8},
        {"share": 0.6, "rate_sent": 2390.0, "p99_s": 0.6}]}
    rows = by_name(report.rows({"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 1.0),
                                                   "freshness": f}}}))
    held = rows["freshness: highest rate tried with p99 <= 1 s"]
    assert (held["ours"], held["limit"]) == (2390.0, 3200.0)
    assert "70%: 2,790/s p99 1.80 s; 60%: 2,390/s p99 0.60 s" in held["note"]
    f["sustained"] = {"share": None, "tried": [{"share": 0.5, "rate_sent": 2000.0,
                                                 "p99_s": None}]}
    rows = by_name(report.rows({"runs": {"1w_on": {**run("1 worker, compat on", 4000.0, 1.0),
                                                   "freshness": f}}}))
    assert rows["freshness: highest rate tried with p99 <= 1 s"]["ours"] is None


def test_rows_metrics_on_against_off():
    """the compat-off run (metrics on) against the PERSONA_METRICS=off run."""
    on = run("1 worker, compat off", 4000.0, 150.0)
    off = {**run("1 worker, compat off, PERSONA_METRICS=off", 4200.0, 142.5),
           "metrics_answer": 404}
    rows = by_name(report.rows({"runs": {"1w_off": on}, "metrics_off": off}))
    eps = rows["metrics on ÷ off, ingest events/s"]
    assert (eps["ours"], eps["limit"]) == (4000.0, 4200.0)
    assert eps["ratio"] == pytest.approx(4000 / 4200)
    assert "metrics on -4.8% events/s" in eps["note"]
    assert "metrics on <= 5 % slower (ratio >= 0.95)" in eps["note"]
    cpu = rows["metrics on ÷ off, worker CPU per event"]
    assert (cpu["ours"], cpu["limit"]) == (150.0, 142.5)
    assert cpu["ratio"] == pytest.approx(150 / 142.5)
    assert "metrics on +5.3% CPU per event" in cpu["note"] and "ratio <= 1.05" in cpu["note"]
    assert "NOT A COMPARISON" not in cpu["note"] and "py-spy" not in cpu["note"]
    assert "metrics on ÷ off, worker CPU per event" in report.table(report.rows(
        {"runs": {"1w_off": on}, "metrics_off": off}))
    # A worker that ignored the switch (an older --app-root), or a profiled on run: said so.
    rows = by_name(report.rows({"runs": {"1w_off": {**on, "profiled": True}},
                                "metrics_off": {**off, "metrics_answer": 200}}))
    note = rows["metrics on ÷ off, worker CPU per event"]["note"]
    assert "GET /metrics answered 200, not 404" in note and "py-spy attached" in note
    # Either run missing (--skip metrics, --skip off): no metrics rows.
    for res in ({"runs": {"1w_off": on}}, {"runs": {}, "metrics_off": off}):
        assert not any(r["figure"].startswith("metrics on") for r in report.rows(res))


def test_metrics_cost_uses_the_medians_of_the_repeated_pairs():
    runs = {"on": [{"eps": 100.0, "worker_cpu_us_per_event": 200.0},
                   {"eps": 120.0, "worker_cpu_us_per_event": 180.0},
                   {"eps": 110.0, "worker_cpu_us_per_event": 190.0}],
            "off": [{"eps": 115.0, "worker_cpu_us_per_event": 185.0, "metrics_answer": 404},
                    {"eps": 105.0, "worker_cpu_us_per_event": 188.0, "metrics_answer": 404}]}
    on, off = report.median_run(runs["on"]), report.median_run(runs["off"])
    assert on["eps"] == 110.0 and on["worker_cpu_us_per_event"] == 190.0 and on["runs"] == 3
    assert off["eps"] == 110.0 and off["worker_cpu_us_per_event"] == 186.5
    assert off["metrics_answer"] == 404
    rows = by_name(report.rows({"runs": {}, "metrics_on": on, "metrics_off": off}))
    cpu = rows["metrics on ÷ off, worker CPU per event"]
    assert cpu["ours"] == 190.0 and cpu["limit"] == 186.5  # the medians of the pairs
    bad = report.median_run([{"eps": 1.0, "metrics_answer": 404}, {"eps": 1.0, "metrics_answer": 200}])
    assert bad["metrics_answer"] == 200


def test_rows_restart_and_failover_of_one_of_two_workers():
    restart = {"restart": {"stop_to_ready_s": 3.9, "start_to_ready_s": 2.6, "all_answer_s": 4.0,
                           "other_rebalanced": False, "reads": 400, "not_200": 31,
                           "longest_not_200_s": 3.8},
               "failover": {"all_answer_s": 11.2, "bound_s": 12.0, "reads": 300,
                            "not_200": 120, "longest_not_200_s": 11.0}}
    res = {"runs": {"2w_kafka": {**run("2 workers, Apache Kafka", 9000.0, 150.0),
                                 "restart": restart}}}
    rows = by_name(report.rows(res))
    r = rows["restart one of 2 workers to /ready (Apache Kafka)"]
    assert (r["ours"], r["limit"]) == (2.6, 5.0) and "kept serving (no rebalance)" in r["note"]
    assert "31 of 400 sampled reads not 200, for 3.8s at most" in r["note"]
    f = rows["kill -9 one of 2 workers to served by the other (Apache Kafka)"]
    assert (f["ours"], f["limit"]) == (11.2, 12.0) and "120 of 300" in f["note"]
    restart["restart"]["other_rebalanced"] = True
    assert "REBALANCED" in by_name(report.rows(res))[
        "restart one of 2 workers to /ready (Apache Kafka)"]["note"]
