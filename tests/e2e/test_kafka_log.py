"""What only a real Kafka log can answer: a wiped worker restores its tables from changelogs
that the log cleaner has compacted (one record per key, tombstones dropped), and from a
windowed KPI changelog whose log start offset has moved above 0.

The module's own Kafka node runs a fast log cleaner (Kafka's own integration tests do the
same): segments roll every second, the cleaner looks every 100 ms and cleans any dirty
segment, tombstones go at once. The active segment is never cleaned, so a last write to each
changelog partition rolls the segment before the check.
"""
from __future__ import annotations

import re
import time

import pytest

from app.harness.cluster import Broker
from app.harness.net import http
from app.rules import profile_state
from app.rules import window_kpis as wk
from app.settings import settings
from tests.conftest import ADMIN, API_KEYS, READ
from tests.e2e.test_kpis import kpi_applied, kpis, partition_of
from tests.support.cluster import Cluster, poll
from tests.support.expected import fold
from tests.support.topics import delete_records, offsets, records

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FAST_CLEANER = {
    "log.roll.ms": 1000,
    "log.cleaner.backoff.ms": 100,
    "log.cleaner.min.cleanable.ratio": 0.01,
    "log.cleaner.min.compaction.lag.ms": 0,
    "log.cleaner.delete.retention.ms": 1,
}
DOCUMENT_CHANGELOGS = [f"persona-{t}-changelog" for t in ("profiles", "sessions", "erasures")]
KPI_CHANGELOGS = [f"persona-kpis-{w}-changelog" for w in wk.WINDOWS]
T0 = 1_700_000_000_000
FLUSH = {"PERSONA_FLUSH_INTERVAL_S": "0.3"}


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    b = Broker(log=tmp_path_factory.mktemp("kafka-log") / "broker.log", kind="kafka",
               overrides=FAST_CLEANER).start()
    yield b
    b.stop()


@pytest.fixture
def workers(kafka, tmp_path):
    c = Cluster(kafka, tmp_path, API_KEYS, env=FLUSH)
    yield c
    c.stop_all()


def view(cid: str, n: int, round_: int) -> dict:
    return {"event_id": f"{cid}-{round_}-{n}", "type": "product_view", "customer_id": cid,
            "ts": T0 + round_ * 60_000 + n, "product_id": f"p{n % 7}", "category": "shoes",
            "price": 5.0 + n}


def profile(worker, cid):
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ)


def wait_applied(worker, events: list, timeout: float = 90.0) -> None:
    """Until the worker's profiles equal the oracle fold of ``events`` (every customer)."""
    want = {cid: profile_state.view(p) for cid, (_, p) in fold(events).items()}
    for cid, expected in want.items():
        got = poll(lambda cid=cid: profile(worker, cid), lambda r, e=expected: r == (200, e),
                   timeout)
        assert got == (200, want[cid]), f"{cid}: {got}\n{worker.tail(20)}"


def restored_records(worker, since: int) -> int:
    found = re.findall(rb"bulk restore: (\d+) changelog records", worker.log.read_bytes()[since:])
    assert found, f"no bulk restore logged:\n{worker.tail(30)}"
    return sum(int(n) for n in found)


def roll_every_partition(kafka, worker, sent: list, tag: str) -> None:
    """One new customer per events partition, flushed: each changelog partition gets a write
    after its segment is old enough to roll, so every earlier record is in a cleanable one."""
    time.sleep(1.5)  # > log.roll.ms
    rollers, p = [], 0
    while len(rollers) < settings.partitions:
        cid = f"roll-{tag}-{p}"
        if partition_of(cid) == len(rollers):
            rollers.append(view(cid, 0, 0))
        p += 1
        if p > 10_000:
            raise AssertionError("no key found for some partition")
    kafka.produce(rollers)
    sent.extend(rollers)
    wait_applied(worker, rollers)


def end_total(kafka, topic) -> int:
    return sum(end for _, end in offsets(kafka.bootstrap, topic).values())


def per_key(kafka, topic) -> tuple[int, int]:
    """(records, distinct keys) now on ``topic``."""
    rs = records(kafka.bootstrap, topic)
    return len(rs), len({(p, k) for p, _, k, _ in rs})


def test_restore_from_compacted_changelogs_reads_one_record_per_key(kafka, workers):
    a = workers.start()
    customers = [f"cmp-{i}" for i in range(120)]
    sent: list = []
    written = 0
    for r in range(12):  # 12 versions of every customer's documents in the changelogs
        batch = [view(cid, n, r) for cid in customers for n in range(2)]
        kafka.produce(batch)
        sent.extend(batch)
        # Each round is flushed before the next: every customer gets a version of its own.
        written += len(customers)
        ends = poll(lambda: end_total(kafka, "persona-profiles-changelog"),
                    lambda n, w=written: n >= w, 60)
        assert ends >= written, (r, ends, written)
    wait_applied(a, sent)
    gone = customers[0]
    assert http("DELETE", f"{a.url}/v1/customers/{gone}", ADMIN)[0] == 202
    assert poll(lambda: profile(a, gone)[0], lambda s: s == 404) == 404
    # Records written (end offsets), whatever the cleaner has already removed.
    before = {t: end_total(kafka, t) for t in DOCUMENT_CHANGELOGS}
    assert before["persona-profiles-changelog"] >= 12 * len(customers), before

    roll_every_partition(kafka, a, sent, "a")
    # The cleaner compacts the rolled segments. The KPI changelogs have few keys, each
    # rewritten by the rolling write (one more record in the active segment), so they are
    # counted in the total only.
    def compacted(counts: dict) -> bool:
        total = sum(n for n, _ in counts.values())
        keys = sum(k for _, k in counts.values())
        return total <= 1.2 * keys and all(
            counts[t][0] <= 1.2 * counts[t][1] for t in DOCUMENT_CHANGELOGS)

    deadline = time.monotonic() + 120
    while True:
        counts = {t: per_key(kafka, t) for t in DOCUMENT_CHANGELOGS + KPI_CHANGELOGS}
        if compacted(counts) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert compacted(counts), f"written {before}, now (records, keys) {counts}"
    live = sum(keys for _, keys in counts.values())

    a.stop()
    b = workers.start(wait=False)  # a new data dir: everything comes from the changelogs
    b.wait_ready()
    expected = fold([e for e in sent if e["customer_id"] != gone])
    for cid, (_, p) in expected.items():
        assert profile(b, cid) == (200, profile_state.view(p)), cid
    assert profile(b, gone)[0] == 404
    assert http("GET", f"{b.url}/v1/customers/{gone}/activity", READ)[0] == 404
    # Restore reads the compacted logs: about one record per key, where it was written
    # ~12 times per key before compaction.
    restored = restored_records(b, 0)
    assert restored <= 1.2 * live, (restored, live, counts)


def test_wiped_worker_restores_kpis_when_the_changelog_start_moved(kafka, workers):
    """A windowed changelog whose log start offset is above 0 (what retention does to a
    ``compact,delete`` topic): restore starts at the log start, does not stall, and the
    rows still in the log come back exact."""
    a = workers.start()
    old = [view(f"ret-{i}", n, 0) for i in range(30) for n in range(3)]  # day 0
    kafka.produce(old)
    wait_applied(a, old)
    time.sleep(1.0)
    topic = "persona-kpis-1d-changelog"
    cut = {p: end for p, (start, end) in offsets(kafka.bootstrap, topic).items() if end}
    assert cut, "no KPI rows were written"
    day = 3 * wk.DAY_MS
    new = [dict(view(f"ret-{i}", n, 0), event_id=f"ret-{i}-new-{n}", ts=T0 + day + n)
           for i in range(30) for n in range(2)]
    kafka.produce(new)
    wait_applied(a, old + new)
    time.sleep(1.0)  # the new rows flushed
    starts = delete_records(kafka.bootstrap, topic, cut)
    assert starts and all(v > 0 for v in starts.values()), starts

    a.stop()
    b = workers.start(wait=False)
    b.wait_ready(timeout=60)  # no recovery stall
    start = wk.window_start(T0 + day, wk.DAY_MS)
    rows = wk.fold_rows(kpi_applied(old + new, partition_of), "1d")
    want = {key: row for key, row in rows.items() if key[1] == start}
    got = poll(lambda: kpis(b, "1d", start, start + wk.DAY_MS),
               lambda r: r[0] == 200 and r[1]["totals"]["events"] == len(new))
    assert got[0] == 200, got
    assert got[1]["totals"] == wk.summary(wk.merge(want.values())), got
