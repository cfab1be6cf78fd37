"""End to end: real broker, real worker process, real events, answers over HTTP."""
from __future__ import annotations

import asyncio
import re

import pytest

from app.cli.otto import load_sample
from app.harness.net import http
from app.rules import profile_state, session_state
from tests.conftest import ADMIN, INGEST, READ
from tests.support.cluster import poll
from tests.support.expected import fold

pytestmark = [pytest.mark.e2e, pytest.mark.brokers("tansu", "kafka")]

INVALID = [
    b'{"type": "product_view", "customer_id": "bad-1", "ts": 1',            # truncated JSON
    b'{"event_id": "x1", "type": "teleport", "customer_id": "bad-2", "ts": 1}',
    b'{"event_id": "x2", "type": "cart_add", "customer_id": "bad-3", "ts": 1}',  # no product_id
    b'{"event_id": "x3", "type": "cart_add", "customer_id": "bad-4", "ts": 1,'
    b' "product_id": "p", "quantity": "two"}',
    b'[1, 2, 3]',
    b'\xff\xfe not utf-8',
]


def profile(worker, cid, key=READ):
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile", key)


def activity(worker, cid, key=READ):
    return http("GET", f"{worker.url}/v1/customers/{cid}/activity", key)


def wait_for_profile(worker, cid, want, timeout=60.0):
    got = poll(lambda: profile(worker, cid), lambda r: r == (200, want), timeout)
    assert got == (200, want), f"{cid}: {got}\n{worker.tail(20)}"


@pytest.fixture(scope="module")
def sample():
    events = load_sample()
    return events, fold(events)


def test_real_sample_invalid_events_and_restart(broker, cluster, sample):
    events, expected = sample
    worker = cluster.start()
    broker.produce(events + INVALID)
    customers = sorted(expected)
    assert len(customers) == 20
    for cid in customers:
        wait_for_profile(worker, cid, profile_state.view(expected[cid][1]))
        assert activity(worker, cid) == (200, session_state.view(expected[cid][0]))
    with_orders = [c for c in customers if expected[c][1]["orders"]]
    assert with_orders, "the sample has purchases"
    status, body = profile(worker, with_orders[0])
    assert body["orders"] >= 1 and body["total_spent"] > 0 and body["as_of"] > 0

    dead = broker.read_topic("events-dlq", expect=len(INVALID))
    assert len(dead) == len(INVALID)
    reasons = sorted(d["reason"] for d in dead)
    assert reasons.count("malformed JSON") == 2
    assert {"invalid envelope", "invalid cart_add event", "event is not a JSON object"} <= set(reasons)
    assert any(d["raw_encoding"] == "base64" for d in dead)
    assert all(d["errors"] for d in dead)
    for bad in ("bad-2", "bad-3", "bad-4"):
        assert profile(worker, bad)[0] == 404
    assert worker.alive()

    # Restart with the local RocksDB state kept: state is there and keeps updating.
    cid = customers[0]
    worker.stop()
    worker.start().wait_ready()
    wait_for_profile(worker, cid, profile_state.view(expected[cid][1]))
    extra = {"event_id": "after-restart-1", "type": "payment_preference", "customer_id": cid,
             "ts": expected[cid][1]["last_seen"] + 1000, "method": "paypal"}
    broker.produce([extra])
    after = fold(events + [extra])
    wait_for_profile(worker, cid, profile_state.view(after[cid][1]))

    # Restart with the data dir wiped: state is restored from the changelog.
    worker.stop()
    worker.wipe()
    logged = worker.log.stat().st_size
    worker.start().wait_ready()
    for c in customers:
        wait_for_profile(worker, c, profile_state.view(after[c][1]))
    # ... by app/kafka/restore.py's bulk path (getmany + WriteBatch), not record by record.
    restored = re.findall(rb"bulk restore: (\d+) changelog records", worker.log.read_bytes()[logged:])
    assert restored and sum(map(int, restored)) >= len(customers), worker.tail(40)
    assert b"bulk restore failed" not in worker.log.read_bytes()[logged:]


def test_unkeyed_and_duplicate_events(broker, cluster):
    worker = cluster.start()
    view = {"type": "product_view", "customer_id": "rekey-1", "ts": 1700000000000,
            "product_id": "p1", "category": "shoes", "price": 10.0}
    cart = {"event_id": "dup-1", "type": "cart_add", "customer_id": "rekey-1",
            "ts": 1700000001000, "product_id": "p1", "quantity": 2, "price": 10.0}
    broker.produce([view, cart, cart, cart])  # keyed by customer_id, cart delivered 3 times
    unkeyed = {**view, "event_id": "nokey-1", "customer_id": "rekey-2"}
    # A producer that sends without a key: the agent re-keys it to the owner's partition.
    asyncio.run(_send_unkeyed(broker, unkeyed))
    got = poll(lambda: activity(worker, "rekey-1"), lambda r: r[0] == 200 and r[1]["events"] == 2)
    assert got[0] == 200 and got[1]["cart_value"] == 20.0 and got[1]["cart"][0]["quantity"] == 2
    got = poll(lambda: profile(worker, "rekey-2"), lambda r: r[0] == 200)
    assert got[0] == 200 and got[1]["event_counts"] == {"product_view": 1}


async def _send_unkeyed(broker, event):
    import orjson
    from aiokafka import AIOKafkaProducer
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.port}")
    await producer.start()
    try:
        for partition in range(8):  # wrong partition for sure, at least 7 times out of 8
            await producer.send_and_wait("events", orjson.dumps(event), partition=partition)
    finally:
        await producer.stop()


def test_routes_need_keys_and_default_views_are_closed(broker, cluster):
    worker = cluster.start()
    assert http("GET", f"{worker.url}/health")[0] == 200
    assert http("GET", f"{worker.url}/ready")[0] == 200
    url = f"{worker.url}/v1/customers/nobody/profile"
    assert http("GET", url)[0] == 401
    assert http("GET", url, key="wrong")[0] == 401
    assert http("GET", url, key=INGEST)[0] == 403
    assert http("GET", url, key=READ)[0] == 404
    assert http("GET", url, key=ADMIN)[0] == 404
    assert http("GET", f"{worker.url}/v1/customers/bad%20id!/profile", key=READ)[0] == 400
    for path in ("/table/", "/table/profiles/", "/router/", "/graph/", "/stats/"):
        assert http("GET", f"{worker.url}{path}", key=ADMIN)[0] == 404, path
    # Faust's production index stays at "/": a constant, no data.
    assert http("GET", f"{worker.url}/") == (200, {"status": "OK"})
