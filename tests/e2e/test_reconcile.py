"""persona-reconcile against a real worker: a fault written straight to the changelogs (and
restored into the worker's tables by a restart) is found for exactly those customers,
``--repair`` fixes it through the agent, and the next run is clean."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import subprocess
import sys
import threading
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from app.cli import logread
from app.consistency.shadow import changelog
from app.harness.cluster import ROOT
from app.harness.net import http
from app.rules import profile_state, session_state
from tests.conftest import ADMIN, INGEST, READ
from tests.support.cluster import poll
from tests.support.expected import fold
from tests.support.terminal import run_on_terminal

pytestmark = pytest.mark.e2e
T0 = 1_700_000_000_000


def shop_events() -> list[dict]:
    out = []
    for n in range(8):
        cid = f"rc-{n}"
        for i in range(3 + n % 3):
            out.append({"event_id": f"{cid}-v{i}", "type": "product_view", "customer_id": cid,
                        "ts": T0 + i * 1000, "product_id": f"p{i}", "category": f"cat{n % 2}",
                        "price": 5.0})
        out.append({"event_id": f"{cid}-a", "type": "cart_add", "customer_id": cid,
                    "ts": T0 + 9000, "product_id": "p1", "quantity": 2, "price": 5.0})
        if n % 2:
            out.append({"event_id": f"{cid}-o", "type": "purchase", "customer_id": cid,
                        "ts": T0 + 20000, "order_id": f"o-{n}", "total": 10.0, "currency": "EUR",
                        "items": [{"product_id": "p1", "quantity": 2, "price": 5.0}]})
    out.append(out[0])  # a duplicate
    return out


def reconcile_cli(broker, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BROKER_URL": broker.url, "PERSONA_LOCAL_BROKER_COMPAT": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli.reconcile", "--wait", "90", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def latest(broker, table: str) -> dict:
    """{customer_id: (partition, key bytes, document)}: the changelog's newest record per key."""
    async def run():
        consumer = logread.reader(broker.bootstrap)
        await consumer.start()
        try:
            topic = changelog(table)
            ends = await logread.end_offsets(consumer, broker.bootstrap, topic, True)
            return {orjson.loads(r.key): (r.partition, r.key, r.value and orjson.loads(r.value))
                    async for r in logread.read_to(broker.bootstrap, topic, ends)}
        finally:
            await consumer.stop()
    return asyncio.run(run())


def corrupt(broker, table: str, records: dict) -> None:
    """Produce wrong documents to ``table``'s changelog, as a bad write or a bug would."""
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            for partition, key, doc in records.values():
                await producer.send_and_wait(changelog(table), orjson.dumps(doc), key=key,
                                             partition=partition)
        finally:
            await producer.stop()
    asyncio.run(run())


@contextlib.contextmanager
def background_load(broker):
    """~50 events/s for new customers and for rc-0/rc-1 until the block ends."""
    stop = threading.Event()

    def run():
        for n in itertools.count():
            if stop.is_set():
                return
            broker.produce([{"event_id": f"bg-{n}-{c}", "type": "product_view",
                             "customer_id": c, "ts": T0 + 100_000 + n, "product_id": f"b{n}",
                             "category": "bg"} for c in ("rc-0", "rc-1", f"bg-{n % 5}")])
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(2)
        yield
    finally:
        stop.set()
        thread.join(30)


def answer(worker, cid, what="profile"):
    return http("GET", f"{worker.url}/v1/customers/{cid}/{what}", READ)


def test_reconcile_finds_exactly_the_corrupted_customers_and_repairs_them(broker, cluster):
    worker = cluster.start(env={"PERSONA_FLUSH_INTERVAL_S": "1"})
    events = shop_events()
    broker.produce(events)
    assert http("DELETE", f"{worker.url}/v1/customers/rc-7", ADMIN)[0] == 202
    expected = fold([e for e in events if e["customer_id"] != "rc-7"])
    for cid, (_, profile) in expected.items():
        want = profile_state.view(profile)
        assert poll(lambda c=cid: answer(worker, c), lambda r, w=want: r == (200, w))[1] == want

    # Reconcile commands are internal: public ingest refuses them.
    cmd = {"type": "reconcile", "customer_id": "rc-1", "tables": {"profiles": {
        "seen": None, "state": {"customer_id": "rc-1"}}}}
    code, body = http("POST", f"{worker.url}/v1/events", INGEST, orjson.dumps(cmd),
                      {"Content-Type": "application/json"})
    assert code == 400 and body["items"][0]["errors"]["type"]

    clean = reconcile_cli(broker)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "8 checked, 8 match, 0 mismatch" in clean.stdout

    profiles, sessions = latest(broker, "profiles"), latest(broker, "sessions")
    assert profiles["rc-7"][2] is None  # erased: a tombstone, and the re-fold agrees
    bad_profiles = {c: profiles[c] for c in ("rc-2", "rc-5")}
    for _, _, doc in bad_profiles.values():
        doc["counts"] = {**doc["counts"], "product_view": 99}
        doc["orders"] += 3
    bad_sessions = {"rc-4": sessions["rc-4"]}
    bad_sessions["rc-4"][2]["cart"] = {}
    corrupt(broker, "profiles", bad_profiles)
    corrupt(broker, "sessions", bad_sessions)
    worker.stop()  # a restart restores the changelog's tail: the workers now serve the fault
    worker.start().wait_ready()
    assert answer(worker, "rc-2")[1]["event_counts"]["product_view"] == 99
    assert answer(worker, "rc-4", "activity")[1]["cart"] == []

    found = reconcile_cli(broker)
    assert found.returncode == 1, found.stdout + found.stderr
    lines = [ln for ln in found.stdout.splitlines() if ln.startswith("MISMATCH")]
    assert sorted(lines) == ["MISMATCH rc-2 profiles: counts, orders",
                             "MISMATCH rc-4 sessions: cart",
                             "MISMATCH rc-5 profiles: counts, orders"], found.stdout
    assert "8 checked, 5 match, 3 mismatch" in found.stdout

    repaired = reconcile_cli(broker, "--repair")
    assert repaired.returncode == 1 and "sent 3 reconcile command(s)" in repaired.stdout

    with background_load(broker):  # events in flight while it compares: no false mismatch
        again = reconcile_cli(broker)
    assert again.returncode == 0, again.stdout + again.stderr
    assert " 0 mismatch" in again.stdout and "8 match" not in again.stdout  # + bg customers
    for cid in ("rc-2", "rc-5"):
        assert answer(worker, cid) == (200, profile_state.view(expected[cid][1]))
    assert answer(worker, "rc-4", "activity") == (200, session_state.view(expected["rc-4"][0]))
    assert answer(worker, "rc-7")[0] == 404


def test_long_tools_show_progress_on_a_terminal_and_nothing_on_a_pipe(broker, cluster, tmp_path):
    """An operator at a shell sees a count, a rate and the share done; a pipe (scripts, CI)
    sees only the result lines."""
    cluster.start()
    env = {**os.environ, "KAFKA_BROKER_URL": broker.url, "PERSONA_LOCAL_BROKER_COMPAT": "1"}
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(
        {"event_id": f"pg-{n}-{i}", "type": "product_view", "customer_id": f"pg-{n}",
         "ts": T0 + i, "product_id": "p1"}) for n in range(200) for i in range(10)) + b"\n")
    status, _, term = run_on_terminal([sys.executable, "-m", "app.cli.replay", str(path)],
                                      env, ROOT)
    assert status == 0 and "replayed 2000 events" in term, term
    assert re.search(r"replay: 100%\|.*2\.00k/2\.00k .* events/s\]", term), term
    status, out, term = run_on_terminal(
        [sys.executable, "-m", "app.cli.reconcile", "--wait", "90"], env, ROOT)
    assert status == 0 and " 0 mismatch" in out, out + term
    assert re.search(r"events: 100%\|.* records/s\]", term), term
    assert re.search(r"profiles: 100%\|.* records/s\]", term), term
    piped = reconcile_cli(broker)
    assert piped.returncode == 0 and " 0 mismatch" in piped.stdout
    assert "records/s" not in piped.stderr and "\r" not in piped.stderr, piped.stderr
