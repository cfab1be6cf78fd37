"""persona-shadow against a real live worker: a copy of this checkout with no change reports no
difference; with a changed affinity weight it reports exactly the customers and fields the
pure rules say change. One broker and one live worker for the module; the live topics gain
nothing from the shadow."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.cli import shadow
from app.harness.cluster import ROOT
from app.harness.net import http
from app.rules import profile_state, session_state
from app.rules.recommend import recommend
from tests.conftest import API_KEYS, READ
from tests.support.cluster import Cluster, poll
from tests.support.expected import fold

pytestmark = pytest.mark.e2e
T0 = 1_700_000_000_000
WEIGHT_LINE = '"cart_add": 3.0'


def shop_events() -> list[dict]:
    out = []
    for n in range(10):
        cid = f"sh-{n}"
        for i in range(3):
            out.append({"event_id": f"{cid}-v{i}", "type": "product_view", "customer_id": cid,
                        "ts": T0 + i * 60_000, "product_id": f"p{n}{i}",
                        "category": ("shoes", "bags")[i % 2], "price": 5.0})
        if n % 3 == 0:  # the customers a cart_add weight can change
            out.append({"event_id": f"{cid}-a", "type": "cart_add", "customer_id": cid,
                        "ts": T0 + 600_000, "product_id": f"p{n}9", "quantity": 1,
                        "price": 5.0, "category": "bags"})
        if n == 4:
            out.append({"event_id": f"{cid}-s", "type": "search", "customer_id": cid,
                        "ts": T0 + 700_000, "query": "red shoes"})
    return out


async def produce_keyed(broker, key: bytes, event: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("events", orjson.dumps(event), key=key)
    finally:
        await producer.stop()


def same(a, b) -> bool:
    """Equal as JSON (tuples computed here, lists from the HTTP answers)."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def records(broker, topic: str) -> list:
    """The values on ``topic``; none if it does not exist (Faust creates a topic it only
    produces to on the first send)."""
    async def exists():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            return topic in await consumer.topics()
        finally:
            await consumer.stop()
    return broker.read_all(topic) if asyncio.run(exists()) else []


def events_end(broker) -> int:
    return len(broker.read_all("events"))


@pytest.fixture(scope="module")
def live(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    cluster = Cluster(broker, tmp, API_KEYS, env={"PERSONA_FLUSH_INTERVAL_S": "1"})
    worker = cluster.start()
    events = shop_events()
    broker.produce(events)
    misrouted = {**events[0], "event_id": "sh-0-x"}  # keyed as sh-1: the live app re-keys it
    asyncio.run(produce_keyed(broker, b"sh-1", misrouted))
    events.append(misrouted)
    expected = fold(events)
    for cid, (_, profile) in expected.items():
        want = profile_state.view(profile)
        got = poll(lambda c=cid: http("GET", f"{worker.url}/v1/customers/{c}/profile", READ),
                   lambda r, w=want: r == (200, w))
        assert got == (200, want)
    yield worker, events
    cluster.stop_all()


def candidate(tmp_path, weight: float | None = None):
    """A copy of this checkout's code; ``weight`` changes the cart_add affinity weight."""
    root = tmp_path / "candidate"
    for package in ("app", "agents", "tables", "web"):
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    if weight is not None:
        rules = root / "app" / "rules" / "profile_state.py"
        text = rules.read_text()
        assert WEIGHT_LINE in text
        rules.write_text(text.replace(WEIGHT_LINE, f'"cart_add": {weight}'))
    return root


def answers(events) -> dict:
    """Each customer's three answers by the pure rules in this process."""
    return {cid: {"profile": profile_state.view(profile), "activity": session_state.view(session),
                  "recommendations": recommend(session, profile)}
            for cid, (session, profile) in fold(events).items()}


def test_an_unchanged_candidate_shows_no_difference(broker, live, tmp_path):
    worker, _ = live
    before = events_end(broker)
    env = {**os.environ, "KAFKA_BROKER_URL": broker.url, "PERSONA_LOCAL_BROKER_COMPAT": "1",
           "PERSONA_READ_KEY": READ}
    run = subprocess.run([sys.executable, "-m", "app.cli.shadow", "--app-root",
                          str(candidate(tmp_path)), "--live-url", worker.url, "--name", "same",
                          "--timeout", "120"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "customers changed: 0 of 10" in run.stdout
    assert "persona-shadow-same" in run.stdout
    assert events_end(broker) == before  # the shadow produced nothing to events
    assert records(broker, "events-dlq") == [] and records(broker, "webhook-deliveries") == []
    assert len(records(broker, "persona-shadow-same-profiles-changelog")) >= 10  # own tables


def test_a_changed_weight_reports_exactly_the_affected_customers_and_fields(
        broker, live, tmp_path, monkeypatch):
    worker, events = live
    before = events_end(broker)
    live_answers = answers(events)
    monkeypatch.setitem(profile_state.AFFINITY_WEIGHTS, "cart_add", 4.5)
    shadow_answers = answers(events)
    want = {cid: shadow.fields_differing(live_answers[cid], shadow_answers[cid])
            for cid in live_answers}
    want = {cid: fields for cid, fields in want.items() if fields}
    assert set(want) == {"sh-0", "sh-3", "sh-6", "sh-9"}  # the oracle sees the change too

    result = asyncio.run(shadow.compare(candidate(tmp_path, 4.5), worker.url, READ, "weight",
                                        tmp_path / "work", timeout=120,
                                        broker_url=broker.url, compat=True))
    assert result["customers"] == 10
    assert set(result["changed"]) == set(want)
    assert {c: set(f) for c, f in result["changed"].items()} == {c: set(f) for c, f in want.items()}
    assert same(result["changed"], want)  # and the same values on each side
    assert "profile.category_affinities" in next(iter(result["changed"].values()))
    assert events_end(broker) == before
