"""Erasure is durable for webhooks: a kill -9 right after the erase, and a redrive of
``webhooks-dlq`` after it, send no request for the erased customer; other customers'
requests (and the erased customer's new ones, after they come back) still go out; every
admin action leaves an audit record with the caller's key id.

Real workers on the module's bundled broker, a real HTTP receiver in this process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import orjson
import pytest

from app.harness.cluster import ROOT
from app.harness.net import http
from app.observability import audit
from tests.conftest import ADMIN, API_KEYS, READ
from tests.support.cluster import poll

pytestmark = pytest.mark.e2e

SECRET = "plain-secret-0123456789"


def hooks_env(receiver, attempts: int) -> dict:
    subs = [{"id": "main", "url": receiver.url("main"), "secret": SECRET, "timeout_s": 5,
             "events": ["purchase.completed", "cart.updated"]}]
    return {"PERSONA_WEBHOOKS": json.dumps(subs), "PERSONA_WEBHOOK_BACKOFF_S": "0.1",
            "PERSONA_WEBHOOK_BACKOFF_MAX_S": "0.5",
            "PERSONA_WEBHOOK_MAX_ATTEMPTS": str(attempts)}


def shop(cid: str, run: str = "1") -> list[dict]:
    """cart_add then purchase: three requests (cart.updated x2, purchase.completed)."""
    ts = int(time.time() * 1000)
    return [{"event_id": f"{cid}-add-{run}", "type": "cart_add", "customer_id": cid, "ts": ts,
             "product_id": "p1", "quantity": 2, "price": 5.0},
            {"event_id": f"{cid}-buy-{run}", "type": "purchase", "customer_id": cid,
             "ts": ts + 1000, "order_id": f"o-{cid}-{run}", "total": 10.0, "currency": "EUR",
             "items": [{"product_id": "p1", "quantity": 2, "price": 5.0}]}]


def ids(calls) -> set:
    return {c["id"] for c in calls}


def successes(receiver, cid: str) -> list[dict]:
    return [c for c in receiver.of(cid) if c["status"] == 200]


def profile_status(worker, cid: str) -> int:
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ)[0]


def erase(worker, cid: str) -> str:
    code, body = http("DELETE", f"{worker.url}/v1/customers/{cid}", ADMIN)
    assert code == 202, body
    return body["event_id"]


def dropped_in_log(worker) -> str:
    return "\n".join(line for line in worker.log.read_text(errors="replace").splitlines()
                     if "dropped: customer erased" in line)


def audit_records(broker) -> list[dict]:
    return [orjson.loads(v) for v in broker.read_all("audit")]


def test_kill_9_between_erase_and_delivery_sends_nothing_for_the_erased(
        broker, cluster, receiver):
    receiver.rule = lambda call: 503 if call["customer"] == "erased-1" else 200
    worker = cluster.start(env={**hooks_env(receiver, 1000),
                                "PERSONA_FAILPOINT": "erase.after_marker"})
    broker.produce(shop("erased-1"))
    # all three requests are in retry loops: pending, their outbox offsets uncommitted
    assert len(poll(lambda: ids(receiver.of("erased-1")), lambda s: len(s) >= 3, 60)) == 3
    ref = erase(worker, "erased-1")
    poll(worker.alive, lambda alive: not alive, 60)
    assert worker.proc.returncode == -9, worker.tail(30)
    assert "failpoint erase.after_marker" in worker.tail(30)

    receiver.rule = lambda call: 200  # from now on any request would be accepted
    before = list(receiver.of("erased-1"))
    del worker.env["PERSONA_FAILPOINT"]
    worker.wipe()  # the markers must come back from the changelog alone
    worker.start().wait_ready()
    assert poll(lambda: profile_status(worker, "erased-1"), lambda s: s == 404) == 404
    broker.produce(shop("kept-1"))
    assert len(poll(lambda: successes(receiver, "kept-1"), lambda s: len(s) >= 3, 60)) == 3
    # every request created before the erase was re-read after the crash and dropped
    dropped = poll(lambda: dropped_in_log(worker), lambda t: all(i in t for i in ids(before)))
    assert all(i in dropped for i in ids(before)), dropped

    broker.produce(shop("erased-1", run="2"))  # the customer comes back: new events go out
    back = poll(lambda: successes(receiver, "erased-1"), lambda s: len(s) >= 3, 60)
    assert len(back) == 3 and not ids(back) & ids(before)
    time.sleep(1.5)  # > the backoff cap: a live retry loop would have posted again
    after = receiver.of("erased-1")[len(before):]
    assert not ids(after) & ids(before) and not any(c["status"] == 200 for c in before)
    assert {c["kind"] for c in back} == {"cart.updated", "purchase.completed"}

    (entry,) = [a for a in audit_records(broker) if a["target"] == "customer:erased-1"]
    assert entry["action"] == "erase" and entry["ref"] == ref
    assert entry["key_id"] == audit.key_id(ADMIN) and ADMIN not in json.dumps(entry)
    assert abs(entry["at"] / 1000 - time.time()) < 300


def dlq_ids(broker, cid: str) -> set:
    entries = [orjson.loads(v) for v in broker.read_all("webhooks-dlq")]
    return {e["webhook_id"] for e in entries if e["customer_id"] == cid}


def redrive(broker, env: dict) -> str:
    env = {**os.environ, **env, "KAFKA_BROKER_URL": broker.url, "PERSONA_API_KEYS": API_KEYS,
           "PERSONA_ADMIN_KEY": ADMIN}
    done = subprocess.run([sys.executable, "-m", "app.cli.redrive", "--subscription", "main"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_redrive_after_erase_sends_only_the_other_customers(broker, cluster, receiver):
    parked = ("parked-gone", "parked-kept")
    receiver.rule = lambda call: 500 if call["customer"] in parked else 200
    env = hooks_env(receiver, 2)
    worker = cluster.start(env=env)
    broker.produce(shop("parked-gone") + shop("parked-kept"))
    gone, kept = (poll(lambda c=c: dlq_ids(broker, c), lambda s: len(s) >= 3, 60)
                  for c in parked)
    assert len(gone) == 3 and len(kept) == 3
    erase(worker, "parked-gone")
    assert poll(lambda: profile_status(worker, "parked-gone"), lambda s: s == 404) == 404

    receiver.rule = lambda call: 200
    before = len(receiver.of("parked-gone"))
    # the tool sends every entry back; the worker owning the partition drops the erased
    assert "main: redrove 6 deliveries" in redrive(broker, env)
    got = poll(lambda: successes(receiver, "parked-kept"), lambda s: len(s) >= 3, 60)
    assert ids(got) == kept
    dropped = poll(lambda: dropped_in_log(worker), lambda t: all(i in t for i in gone))
    assert all(i in dropped for i in gone), dropped
    time.sleep(1.5)
    assert len(receiver.of("parked-gone")) == before  # nothing left Persona for them

    records = audit_records(broker)
    (redriven,) = [a for a in records if a["action"] == "redrive"]
    assert redriven["target"] == "subscription:main" and redriven["count"] == 6
    assert redriven["key_id"] == audit.key_id(ADMIN)
    assert [a["key_id"] for a in records if a["target"] == "customer:parked-gone"] == [
        audit.key_id(ADMIN)]
