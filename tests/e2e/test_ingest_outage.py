"""The broker fails under POST /v1/events: 503 with Retry-After, never a 202 (own broker).

First the broker is frozen (SIGSTOP) longer than PERSONA_INGEST_TIMEOUT_S: 503; after it
thaws, retrying the same events (same event_ids) is accepted and counted once. Then the
broker is stopped for good: still 503, and the worker keeps answering.
"""
from __future__ import annotations

import signal
import time
import uuid

import orjson
import pytest

from app.client import PersonaClient, PersonaError
from app.harness.net import http
from tests.conftest import INGEST, READ
from tests.support.cluster import poll

pytestmark = pytest.mark.e2e
TIMEOUT_S = 2


def post(worker, events):
    return http("POST", f"{worker.url}/v1/events", INGEST, orjson.dumps(events),
                {"Content-Type": "application/json"}, timeout=TIMEOUT_S + 20)


def test_broker_outage_answers_503_never_202(broker, cluster):
    worker = cluster.start(env={"PERSONA_INGEST_TIMEOUT_S": str(TIMEOUT_S)})
    cid = f"out-{uuid.uuid4().hex[:8]}"
    views = [{"type": "product_view", "customer_id": cid, "product_id": f"p{n}",
              "event_id": f"{cid}-{n}"} for n in range(3)]
    assert post(worker, views[:1])[0] == 202

    broker.signal(signal.SIGSTOP)  # frozen: nothing is acknowledged
    try:
        started = time.monotonic()
        status, body = post(worker, views[1:])
        elapsed = time.monotonic() - started
    finally:
        broker.signal(signal.SIGCONT)
    assert status == 503 and body["error"] == "unavailable", body
    assert TIMEOUT_S - 0.5 <= elapsed < TIMEOUT_S + 5

    # The client retries 503s; the same event_ids make the retry safe.
    result = poll(lambda: post(worker, views[1:]), lambda r: r[0] == 202, timeout=30)
    assert result[0] == 202 and result[1]["event_ids"] == [e["event_id"] for e in views[1:]]
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and r[1]["event_counts"].get("product_view") == 3)
    assert got[0] == 200 and got[1]["event_counts"] == {"product_view": 3}, got
    on_topic = [orjson.loads(v)["event_id"] for v in broker.read_all("events")]
    assert set(on_topic) == {e["event_id"] for e in views}  # maybe twice: at-least-once

    broker.stop()
    status, body = post(worker, [{**views[0], "event_id": f"{cid}-dead"}])
    assert status == 503 and body["error"] == "unavailable", (status, body)
    assert http("GET", f"{worker.url}/health")[0] == 200

    with PersonaClient(worker.url, INGEST, retries=1, backoff_s=0.05) as client:
        with pytest.raises(PersonaError) as err:
            client.product_view(cid, "p9")
    assert err.value.status == 503
    worker.kill()  # no graceful shutdown against a dead broker
