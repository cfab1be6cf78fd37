"""Erasure: DELETE queues an erase command; the customer stays gone across a restart and
across a restore from the changelog alone."""
from __future__ import annotations

import pytest

from app.harness.net import http
from tests.conftest import ADMIN, READ
from tests.support.cluster import poll

pytestmark = pytest.mark.e2e


def events_for(cid, n=5, t0=1700000000000):
    return [{"event_id": f"{cid}-{i}", "type": "product_view", "customer_id": cid,
             "ts": t0 + i * 1000, "product_id": f"p{i}", "category": "shoes", "price": 9.5}
            for i in range(n)]


def status(worker, cid, what="profile"):
    return http("GET", f"{worker.url}/v1/customers/{cid}/{what}", READ)[0]


def test_erase_survives_restart_and_changelog_restore(broker, cluster):
    worker = cluster.start()
    broker.produce(events_for("gone-1") + events_for("kept-1"))
    for cid in ("gone-1", "kept-1"):
        assert poll(lambda cid=cid: status(worker, cid), lambda s: s == 200) == 200

    url = f"{worker.url}/v1/customers/gone-1"
    assert http("DELETE", url)[0] == 401
    assert http("DELETE", url, READ)[0] == 403
    code, body = http("DELETE", url, ADMIN)
    assert code == 202 and body["customer_id"] == "gone-1"
    for what in ("profile", "activity", "recommendations"):
        assert poll(lambda w=what: status(worker, "gone-1", w), lambda s: s == 404) == 404

    worker.stop()
    worker.start().wait_ready()
    assert status(worker, "gone-1") == 404
    assert poll(lambda: status(worker, "kept-1"), lambda s: s == 200) == 200

    worker.stop()
    worker.wipe()  # state now comes from the changelog only
    worker.start().wait_ready()
    assert poll(lambda: status(worker, "kept-1"), lambda s: s == 200) == 200
    assert status(worker, "gone-1") == 404
    assert status(worker, "gone-1", "activity") == 404
