"""kill -9 between the write-back flush's steps (``app.consistency.failpoints``), on real workers.

A flush writes RocksDB, then the changelog, then releases the events for Faust's commit
(``agents/writeback.py``). A worker armed with ``PERSONA_FAILPOINT`` kills itself with
SIGKILL exactly at one of those seams. Restarted with the same data dir, every
answer must equal the pure fold of the events (nothing lost, nothing counted twice), and
restarted once more with its data dir wiped, the changelog alone must give the same
answers: the records the crash kept from the broker were written again. ``/v1/kpis`` must
equal the windowed-KPI oracle over every case's events each time (the KPI rows are written
first in a flush: ``flush.after_kpis`` dies with them durable and no document written).
"""
from __future__ import annotations

import orjson
import pytest

from app.cli.otto import load_sample
from app.consistency.failpoints import POINTS
from app.harness.net import http
from app.rules import profile_state, session_state
from tests.conftest import READ
from tests.e2e.test_kpis import expected as expected_kpis
from tests.e2e.test_kpis import kpis, partition_of, ranges
from tests.support.cluster import poll
from tests.support.expected import fold, kpi_applied

pytestmark = pytest.mark.e2e


def renamed(events: list[dict], prefix: str) -> list[dict]:
    """The real sample as other customers (own ids), so each case starts from nothing."""
    return [{**e, "customer_id": prefix + e["customer_id"], "event_id": prefix + e["event_id"]}
            for e in events]


def answers_match(worker, expected: dict) -> None:
    for cid, (session, profile) in expected.items():
        url = f"{worker.url}/v1/customers/{cid}"
        want = profile_state.view(profile)
        got = poll(lambda url=url: http("GET", f"{url}/profile", READ),
                   lambda r, want=want: r == (200, want), 90)
        assert got == (200, want), (cid, got, worker.tail(30))
        assert http("GET", f"{url}/activity", READ) == (200, session_state.view(session)), cid


#: Every case's events in order: the windowed KPIs sum all customers on the broker.
PRODUCED: list = []


def kpis_match(worker) -> None:
    applied = kpi_applied(PRODUCED, partition_of)
    for query in ranges(PRODUCED):
        want = expected_kpis(applied, *query)
        got = poll(lambda q=query: kpis(worker, *q), lambda r, want=want: r == (200, want), 90)
        assert got == (200, want), (query, got, worker.tail(30))


def changelog_profiles(broker, prefix: str) -> dict:
    """The last profile record per customer on the profiles changelog (what a restore reads)."""
    last = {}
    for value in broker.read_all("persona-profiles-changelog"):
        doc = orjson.loads(value) if value else None
        if doc and doc["customer_id"].startswith(prefix):
            last[doc["customer_id"]] = profile_state.view(doc)
    return last


@pytest.mark.parametrize("point", sorted(p for p in POINTS if p.startswith("flush.")))
def test_a_crash_between_flush_steps_loses_and_doubles_nothing(broker, cluster, point):
    prefix = f"{point.split('.')[-1]}-"
    events = renamed(load_sample(), prefix)
    expected = fold(events)
    worker = cluster.start(env={"PERSONA_FAILPOINT": point, "PERSONA_FLUSH_INTERVAL_S": "0.5"})
    broker.produce(events)
    PRODUCED.extend(events)
    poll(worker.alive, lambda alive: not alive, 90)
    assert worker.proc.returncode == -9, worker.tail(30)
    assert f"failpoint {point}" in worker.tail(30)

    del worker.env["PERSONA_FAILPOINT"]
    worker.start().wait_ready()
    answers_match(worker, expected)  # redelivered onto the state the crash left
    kpis_match(worker)
    # The answers can match before the redelivered events are even consumed (RocksDB kept
    # what the crash did not send to the changelog): wait for the replay to rewrite them.
    want = {cid: profile_state.view(p) for cid, (_, p) in expected.items()}
    got = poll(lambda: changelog_profiles(broker, prefix), lambda got: got == want, 90)
    assert got == want, worker.tail(30)

    worker.stop()
    assert changelog_profiles(broker, prefix) == want
    worker.wipe()
    worker.start().wait_ready()
    answers_match(worker, expected)  # from the changelog alone
    kpis_match(worker)
    worker.stop()
