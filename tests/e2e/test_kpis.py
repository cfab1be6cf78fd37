"""``GET /v1/kpis`` against the pure recomputation: the real OTTO sample, then the benchmark
generator's events (with its redeliveries), on one worker and then two (the second
restores its partitions' KPI rows from the changelogs); every figure equal (counts
exactly, money to the cent), and while a worker goes away every answer is either the
full truth or a 503 naming the missing partitions."""
from __future__ import annotations

import time

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from app.cli.otto import load_sample
from app.harness.net import http
from app.rules import window_kpis as wk
from app.rules.events import validate_dict
from app.settings import settings
from bench.gen import generate
from tests.conftest import API_KEYS, INGEST, READ
from tests.e2e.test_cluster import both_ready
from tests.support.cluster import Cluster, poll
from tests.support.expected import kpi_applied

pytestmark = pytest.mark.e2e
PARTITIONS = list(range(settings.partitions))
DAY, MIN = wk.DAY_MS, wk.MINUTE_MS
SENT: list = []  # what this module's tests produced (the later tests build on it)


def partition_of(cid: str) -> int:
    """The producer's default partitioner (murmur2), as the replay tool keys events."""
    return DefaultPartitioner()(cid.encode(), PARTITIONS, PARTITIONS)


def expected(applied: list, window: str, start: int, to: int) -> dict:
    rows = wk.fold_rows(applied, window)
    per_start: dict = {}
    for (_, s), row in rows.items():
        if start <= s < to:
            per_start.setdefault(s, []).append(row)
    merged = {s: wk.merge(rs) for s, rs in sorted(per_start.items())}
    return {"window": window, "from": start, "to": to, "partitions": len(PARTITIONS),
            "newest": max((s for _, s in rows), default=None),
            "totals": wk.summary(wk.merge(merged.values())),
            "series": [{"start": s, **wk.summary(row)} for s, row in merged.items()]}


def ranges(events: list) -> list:
    """(window, from, to) queries covering ``events``: every day, and the minutes of the
    last 47 hours (older minutes are expired)."""
    times = [validate_dict(e)["ts"] for e in events]  # some are ISO-8601 strings
    first, last = min(times), max(times)
    return [("1d", wk.window_start(first, DAY), last + 1),
            ("1m", wk.window_start(max(first, last - 47 * 3600_000), MIN), last + 1)]


def kpis(worker, window, start, to, key=READ):
    return http("GET", f"{worker.url}/v1/kpis?window={window}&from={start}&to={to}", key)


def check(workers, applied, queries, timeout=90):
    for window, start, to in queries:
        want = expected(applied, window, start, to)
        for w in workers:
            got = poll(lambda w=w, q=(window, start, to): kpis(w, *q),
                       lambda r, want=want: r == (200, want), timeout)
            assert got == (200, want), (w.port, window, got, want, w.tail(20))


def bench_events(customers: int, events: int, seed: int, start_ms: int) -> list:
    return [orjson.loads(value) for _, value in generate(customers, events, seed, start_ms)]


@pytest.fixture(scope="module")
def data():
    """The OTTO sample (4 weeks of 2022), then two bursts of the generator's traffic by the
    same 300 customers an hour apart (sessions that end with an open cart, so abandonments)
    two days after it: the OTTO minutes then partly expire, its days do not."""
    otto = load_sample()
    start = wk.window_start(max(validate_dict(e)["ts"] for e in otto), DAY) + 2 * DAY
    bench = bench_events(300, 2000, 14, start) + bench_events(300, 2000, 15, start + 3600_000)
    return otto, bench


@pytest.fixture(scope="module")
def kpi_cluster(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("kpis"), api_keys=API_KEYS)
    yield c
    c.stop_all()


def test_one_worker_equals_the_recomputation(broker, kpi_cluster, data):
    otto, bench = data
    a = kpi_cluster.start()
    broker.produce(otto)
    SENT.append("otto")
    check([a], kpi_applied(otto, partition_of), ranges(otto))
    broker.produce(bench)
    SENT.append("bench")
    applied = kpi_applied(otto + bench, partition_of)
    check([a], applied, ranges(otto) + ranges(bench) + ranges(otto + bench)[:1])
    _, body = kpis(a, *ranges(bench)[0])
    totals = body["totals"]
    assert totals["orders"] > 0 and totals["carts_abandoned"] > 0 and totals["revenue"]
    customers = {e["customer_id"] for e in bench}
    assert abs(totals["active_customers"] - len(customers)) <= 0.02 * len(customers)
    assert totals["events"] < len(bench)  # the generator's redeliveries are not counted


def first_worker(cluster):
    """The module's first worker (started here when a test runs alone)."""
    return cluster.workers[0] if cluster.workers else cluster.start()


def test_bad_requests_and_keys(kpi_cluster):
    a = first_worker(kpi_cluster)
    for query, field in (("window=1h", "window"), ("from=yesterday", "from"),
                         ("to=2026-01-01T00:00:00", "to")):
        status, body = http("GET", f"{a.url}/v1/kpis?{query}", READ)
        assert status == 400 and field in body["fields"], (query, body)
    # from >= to is an empty range, and any span is allowed (the rows held are walked)
    status, body = http("GET", f"{a.url}/v1/kpis?from=2000&to=1000", READ)
    assert status == 200 and body["series"] == [] and body["totals"]["events"] == 0, body
    status, body = http("GET", f"{a.url}/v1/kpis?window=1m&from=0&to=1767225600000", READ)
    assert status == 200 and (body["from"], body["to"]) == (0, 1767225600000), body
    assert http("GET", f"{a.url}/v1/kpis")[0] == 401
    assert http("GET", f"{a.url}/v1/kpis", INGEST)[0] == 403


def test_two_workers_gather_every_partition_or_answer_503(broker, kpi_cluster, data):
    otto, bench = data
    a = first_worker(kpi_cluster)
    if not SENT:  # running alone: what the first test sends
        broker.produce(otto + bench)
    b = kpi_cluster.start()
    both_ready(a, b)
    applied = kpi_applied(otto + bench, partition_of)
    queries = ranges(otto) + ranges(bench) + ranges(otto + bench)[:1]
    check([a, b], applied, queries)  # b restored its partitions' rows from the changelogs
    more = bench_events(40, 400, 16, max(validate_dict(e)["ts"] for e in bench) + 1)
    broker.produce(more)
    applied = kpi_applied(otto + bench + more, partition_of)
    check([a, b], applied, ranges(bench))

    b.stop()  # a takes b's partitions over: the truth or a 503, never a partial sum
    window, start, to = ranges(bench)[0]
    want = expected(applied, window, start, to)
    statuses, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = kpis(a, window, start, to)
        statuses.append(status)
        assert status in (200, 503), body
        if status == 503:
            assert body["missing_partitions"], body
        else:
            assert body == want
        ready = http("GET", f"{a.url}/ready")
        if status == 200 and ready[0] == 200 and len(statuses) > 1 and statuses[-2] == 200:
            break  # a serves everything now, twice in a row
        time.sleep(0.2)
    assert statuses[-1] == 200, statuses
