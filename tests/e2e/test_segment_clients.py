"""Segment-protocol client libraries nobody here wrote, pointed at a real worker.

``segment-analytics-python`` (Basic auth, JSON, batches on ``/v1/batch``) and
``rudder-sdk-python`` (the same protocol, gzip bodies by default), versions pinned in
setup.cfg, each send a shopper's journey (``tests/support/segment.py``) with the host set to
``<worker>/segment``. The customer's profile and session come out as expected, the
anonymous view is merged by the backend's ``identify``, the purchase webhook fires, the
invalid ``Order Completed`` is on ``events-dlq`` with its reason, and the calls Persona does
not use are counted. Neither client reported an error.
"""
from __future__ import annotations

import json
import uuid

import pytest

from app.harness.net import http
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll
from tests.support.segment import check_profile, dead_letters, journey, segment_calls

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def worker(broker, receiver, tmp_path_factory):
    hooks = [{"id": "main", "url": receiver.url("main"), "secret": "segment-hook-secret-0123",
              "events": ["purchase.completed"]}]
    c = Cluster(broker, tmp_path_factory.mktemp("segment"), API_KEYS,
                env={"PERSONA_WEBHOOKS": json.dumps(hooks)})
    yield c.start()
    c.stop_all()


def segment_client(url: str, errors: list):
    from segment.analytics import Client
    return Client(write_key=INGEST, host=f"{url}/segment", max_retries=2,
                  on_error=lambda exc, batch: errors.append(exc))


def rudder_client(url: str, errors: list):
    from rudderstack.analytics import Client
    return Client(write_key=INGEST, host=f"{url}/segment", max_retries=2,
                  on_error=lambda exc, batch: errors.append(exc))


@pytest.mark.parametrize("make_client", [segment_client, rudder_client],
                         ids=["segment-analytics-python", "rudder-sdk-python"])
def test_a_shoppers_journey_through_a_real_client(worker, broker, receiver, make_client):
    cid, anon = f"seg-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    before = segment_calls(worker)
    errors: list = []
    client = make_client(worker.url, errors)
    journey(client, cid, anon)
    client.flush()
    client.join()
    assert errors == []

    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and r[1]["event_counts"].get("purchase") == 1
               and r[1]["event_counts"].get("product_view") == 2)
    assert got[0] == 200, (got, worker.tail(30))
    check_profile(got[1])
    status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
    assert status == 200 and session["cart"] == [] and session["payment_method"] == "paypal"
    assert session["checkout_started_at"] is not None and session["orders"], session
    assert [s["query"] for s in session["recent_searches"]] == ["tent"], session
    status, merged = http("GET", f"{worker.url}/v1/customers/anon-{anon}/profile", READ)
    assert status == 404 and merged["merged_into"] == cid, merged

    hooks = poll(lambda: receiver.of(cid), lambda calls: len(calls) >= 1, timeout=30)
    assert [c["kind"] for c in hooks] == ["purchase.completed"], hooks

    letters = dead_letters(broker, f"broken-{cid}")
    assert len(letters) == 1, letters
    assert letters[0]["reason"] == "invalid Segment Order Completed"
    assert "properties.products" in letters[0]["errors"], letters[0]
    assert letters[0]["source"]["http"] == "/segment/v1/batch"

    after = segment_calls(worker)
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew[("page", "unused")] == 1 and grew[("track", "unused")] == 1, grew
    assert grew[("track", "dead_lettered")] == 1 and grew[("identify", "stored")] == 1, grew
    assert grew[("track", "stored")] == 9, grew
