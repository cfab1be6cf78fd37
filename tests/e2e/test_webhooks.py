"""Webhooks end to end: real broker, real workers, a real HTTP receiver in this process."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from app.harness.cluster import ROOT
from app.harness.net import http
from tests.conftest import ADMIN, READ
from tests.support.cluster import poll

pytestmark = pytest.mark.e2e

MAIN_KEY = bytes(range(7, 39))
MAIN_SECRET = "whsec_" + base64.b64encode(MAIN_KEY).decode()
OTHER_SECRET = "plain-secret-0123456789"
SECRETS = {"main": MAIN_KEY, "other": OTHER_SECRET.encode()}


def verify(sub: str, call: dict) -> bool:
    """An independent Standard Webhooks verification, as a receiver would write it."""
    h = call["headers"]
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + call["body"]
    want = base64.b64encode(hmac.new(SECRETS[sub], signed, hashlib.sha256).digest()).decode()
    sigs = [s.split(",", 1)[1] for s in h["webhook-signature"].split() if s.startswith("v1,")]
    fresh = abs(time.time() - int(h["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(s, want) for s in sigs)


def deliveries(calls: list[dict]) -> dict:
    """body -> calls: every attempt of one delivery request posts the same bytes."""
    out = defaultdict(list)
    for c in calls:
        out[c["body"]].append(c)
    return out


@pytest.fixture(scope="module")
def hooks_env(receiver):
    subs = [{"id": "main", "url": receiver.url("main"), "secret": MAIN_SECRET, "timeout_s": 5,
             "events": ["purchase.completed", "cart.updated", "cart.abandoned"]},
            {"id": "other", "url": receiver.url("other"), "secret": OTHER_SECRET,
             "events": ["purchase.completed"]}]
    return {"PERSONA_WEBHOOKS": json.dumps(subs), "PERSONA_WEBHOOK_BACKOFF_S": "0.1",
            "PERSONA_WEBHOOK_BACKOFF_MAX_S": "0.5", "PERSONA_WEBHOOK_MAX_ATTEMPTS": "4",
            "PERSONA_ABANDON_CHECK_S": "1"}


def shop(cid: str, ts: int | None = None) -> list[dict]:
    """cart_add then purchase of the same product: cart.updated x2 + purchase.completed."""
    ts = ts or int(time.time() * 1000)
    return [{"event_id": f"{cid}-add", "type": "cart_add", "customer_id": cid, "ts": ts,
             "product_id": "p1", "quantity": 2, "price": 5.0},
            {"event_id": f"{cid}-buy", "type": "purchase", "customer_id": cid, "ts": ts + 1000,
             "order_id": f"o-{cid}", "total": 10.0, "currency": "EUR",
             "items": [{"product_id": "p1", "quantity": 2, "price": 5.0}]}]


def successes(receiver, cid, sub="main") -> list[dict]:
    return [c for c in receiver.of(cid, sub) if 200 <= c["status"] < 300]


def wait_successes(receiver, cid, n, sub="main", timeout=60.0) -> list[dict]:
    got = poll(lambda: successes(receiver, cid, sub), lambda s: len(s) >= n, timeout)
    assert len(got) >= n, f"{cid}/{sub}: {len(got)} of {n} delivered: {receiver.of(cid, sub)}"
    return got


def read_all(broker, topic: str, idle_s: float = 1.5) -> list[dict]:
    async def run():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{broker.port}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out, last = [], time.monotonic()
        try:
            while time.monotonic() - last < idle_s:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(orjson.loads(r.value) for r in records)
                    last = time.monotonic()
        finally:
            await consumer.stop()
        return out
    return asyncio.run(run())


def dlq_of(broker, cid: str) -> list[dict]:
    return [e for e in read_all(broker, "webhooks-dlq") if e["customer_id"] == cid]


def redrive(broker, hooks_env, *args) -> str:
    env = {**os.environ, **hooks_env, "KAFKA_BROKER_URL": broker.url}
    done = subprocess.run([sys.executable, "-m", "app.cli.redrive", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_retries_until_success_with_one_id_and_valid_signatures(broker, cluster, receiver, hooks_env):
    def rule(call):
        if call["customer"] == "flaky-1" and call["sub"] == "main":
            return [429, 503, 200][min(call["n"], 2)]
        return 200
    receiver.rule = rule
    cluster.start(env=hooks_env)
    broker.produce(shop("flaky-1"))
    wait_successes(receiver, "flaky-1", 3)
    assert wait_successes(receiver, "flaky-1", 1, sub="other")[0]["kind"] == "purchase.completed"
    time.sleep(1.0)  # nothing more may arrive
    per_delivery = deliveries(receiver.of("flaky-1"))
    kinds = sorted(calls[0]["kind"] for calls in per_delivery.values())
    assert kinds == ["cart.updated", "cart.updated", "purchase.completed"]
    for calls in per_delivery.values():
        assert [c["status"] for c in calls] == [429, 503, 200]
        assert len({c["id"] for c in calls}) == 1 and calls[0]["id"].startswith("msg_")
        assert all(verify("main", c) for c in calls)
    assert len({calls[0]["id"] for calls in per_delivery.values()}) == 3
    assert all(verify("other", c) for c in receiver.of("flaky-1", "other"))
    purchase = next(orjson.loads(b) for b, calls in per_delivery.items()
                    if calls[0]["kind"] == "purchase.completed")
    assert purchase["data"]["order"]["order_id"] == "o-flaky-1"
    assert purchase["data"]["profile"]["orders"] == 1 and purchase["data"]["profile"]["total_spent"] == 10.0


def test_exhausted_and_gone_go_to_dlq_and_redrive_delivers(broker, cluster, receiver, hooks_env):
    def rule(call):
        if call["sub"] == "main" and call["customer"] == "dead-1":
            return 500
        if call["sub"] == "main" and call["customer"] == "gone-1":
            return 410
        return 200
    receiver.rule = rule
    cluster.start(env=hooks_env)
    broker.produce(shop("dead-1") + shop("gone-1"))
    # the dead subscriber does not hold up the other subscription
    wait_successes(receiver, "dead-1", 1, sub="other")
    parked = poll(lambda: dlq_of(broker, "dead-1"), lambda e: len(e) >= 3, 60)
    assert len(parked) == 3, parked
    assert all(e["attempts"] == 4 and e["status"] == 500 and e["error"] == "HTTP 500" for e in parked)
    assert all(len(calls) == 4 for calls in deliveries(receiver.of("dead-1")).values())
    gone = poll(lambda: dlq_of(broker, "gone-1"), lambda e: len(e) >= 3, 60)
    assert all(e["attempts"] == 1 and e["status"] == 410 for e in gone)
    assert len(receiver.of("gone-1")) == 3  # 410: no retries

    receiver.rule = lambda call: 200  # both subscribers fixed
    assert "main: redrove 6 deliveries" in redrive(broker, hooks_env, "--subscription", "main")
    got = wait_successes(receiver, "dead-1", 3)
    assert {c["id"] for c in got} == {e["webhook_id"] for e in parked}
    assert all(verify("main", c) for c in got)
    assert {c["id"] for c in wait_successes(receiver, "gone-1", 3)} == {e["webhook_id"] for e in gone}
    # a second redrive finds nothing new: the redrive group committed its offsets
    assert "main: redrove 0 deliveries" in redrive(broker, hooks_env, "--subscription", "main")


def test_kill_9_with_pending_deliveries_loses_nothing(broker, cluster, receiver, hooks_env):
    broken = {"on": True}
    customers = [f"crash-{i}" for i in range(4)]

    def rule(call):
        if call["customer"].startswith("crash-") and broken["on"]:
            return 503, 1.0
        return 200
    receiver.rule = rule
    env = {**hooks_env, "PERSONA_WEBHOOK_MAX_ATTEMPTS": "100", "PERSONA_WEBHOOK_CONCURRENCY": "4"}
    worker = cluster.start(env=env)
    broker.produce([e for cid in customers for e in shop(cid)])

    def attempted():
        return sum(len(receiver.of(cid)) for cid in customers)
    poll(attempted, lambda n: n >= 4, 60)
    # A graceful stop does not wait for the retry loops: they hand their requests back.
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 15, worker.tail(30)
    assert "handed back to the outbox" in worker.log.read_text(errors="replace")
    worker.start().wait_ready()
    seen = attempted()
    poll(attempted, lambda n: n > seen, 60)
    worker.kill()
    broken["on"] = False
    worker.start().wait_ready()
    for cid in customers:
        wait_successes(receiver, cid, 3, timeout=90)
        wait_successes(receiver, cid, 1, sub="other", timeout=30)
    for cid in customers:
        per_delivery = deliveries(receiver.of(cid))
        assert len(per_delivery) == 3
        for calls in per_delivery.values():  # duplicates (a redelivery) share the webhook-id
            assert len({c["id"] for c in calls}) == 1
            assert any(c["status"] == 200 for c in calls)
            assert all(verify("main", c) for c in calls)


def test_erase_cancels_pending_deliveries(broker, cluster, receiver, hooks_env):
    receiver.rule = lambda call: 503 if call["customer"] == "erase-1" else 200
    worker = cluster.start(env={**hooks_env, "PERSONA_WEBHOOK_MAX_ATTEMPTS": "1000"})
    broker.produce(shop("erase-1"))
    poll(lambda: len(receiver.of("erase-1")), lambda n: n >= 6, 60)
    assert http("DELETE", f"{worker.url}/v1/customers/erase-1", ADMIN)[0] == 202
    poll(lambda: http("GET", f"{worker.url}/v1/customers/erase-1/profile", READ)[0],
         lambda s: s == 404, 30)

    def quiet():
        before = len(receiver.of("erase-1"))
        time.sleep(1.5)  # > backoff cap: a live retry loop would post again
        return len(receiver.of("erase-1")) == before
    assert poll(quiet, lambda q: q, 20)
    assert not any(c["status"] == 200 for c in receiver.of("erase-1"))
    assert dlq_of(broker, "erase-1") == []


def test_cart_abandoned_fires_exactly_once(broker, cluster, receiver, hooks_env):
    receiver.rule = lambda call: 200
    worker = cluster.start(env={**hooks_env, "SESSION_IDLE_S": "2"})
    now = int(time.time() * 1000)
    future = now + 3600_000  # the scan cannot see this session as idle: only a new session ends it
    broker.produce([
        {"event_id": "ab1-add", "type": "cart_add", "customer_id": "abandon-1", "ts": now,
         "product_id": "p1", "quantity": 1, "price": 3.0},
        {"event_id": "ab2-add", "type": "cart_add", "customer_id": "abandon-2", "ts": future,
         "product_id": "p2", "quantity": 1, "price": 4.0},
        {"event_id": "ab2-view", "type": "product_view", "customer_id": "abandon-2",
         "ts": future + 10_000, "product_id": "p3"},
    ])

    def abandoned(cid):
        return [c for c in successes(receiver, cid) if c["kind"] == "cart.abandoned"]
    first = poll(lambda: abandoned("abandon-1"), lambda a: len(a) >= 1, 60)
    assert len(first) == 1, receiver.of("abandon-1")
    data = orjson.loads(first[0]["body"])["data"]
    assert data["reason"] == "idle" and data["cart"][0]["product_id"] == "p1"
    assert verify("main", first[0])
    replaced = poll(lambda: abandoned("abandon-2"), lambda a: len(a) >= 1, 60)
    assert orjson.loads(replaced[0]["body"])["data"]["reason"] == "new_session"

    time.sleep(4)  # four more scans of the same idle session
    # a new session replaces the notified one: no second cart.abandoned
    broker.produce([{"event_id": "ab1-view", "type": "product_view", "customer_id": "abandon-1",
                     "ts": int(time.time() * 1000), "product_id": "p9"}])
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/abandon-1/activity", READ),
               lambda r: r[0] == 200 and r[1]["cart"] == [], 30)
    assert got[0] == 200 and got[1]["cart"] == []
    time.sleep(1.5)
    assert len(abandoned("abandon-1")) == 1 and len(abandoned("abandon-2")) == 1
