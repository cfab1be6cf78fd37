"""A worker frozen past its group session (SIGSTOP: a long pause, a frozen VM, or a host cut
off from the brokers, as the worker sees it) writes nothing of its unwritten state once it
wakes up: the write lease of docs/consistency.md.

Worker b flushes only every 120 s, so when it is frozen under a steady stream it holds
every customer state it decided since it started. Worker a takes its partitions over and
applies the rest of the stream. b is woken after that: its rejoin asks for a flush, which
used to write those older states to the changelog after a's newer ones ("late writes"),
with no later event to cover them. Then a stops, b restores every partition from the changelog, and every
profile must be the fold of all events: a late record would have been taken for the
newest. b must also say what it dropped (metric and log line).
"""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

from app.harness.net import get_json, http
from tests.conftest import ADMIN, READ
from tests.support.cluster import poll
from tests.support.stream import Producer, synthetic, truths

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RATE = 20.0  # events/s: b's batches never pause long enough to count as quiet input
SESSION_S = 10.0  # PERSONA_GROUP_SESSION_TIMEOUT_S (its default)


def test_a_worker_frozen_past_its_session_writes_none_of_its_older_state(cluster, broker):
    events = synthetic(30, 20)
    events.sort(key=lambda e: e["ts"])
    _, final = truths(events)
    a = cluster.start()
    every = active(a)  # alone: every partition of every topic it consumes
    b = cluster.start(env={"PERSONA_FLUSH_INTERVAL_S": "120"})
    assert poll(lambda: active(a), lambda n: n < every, 60) < every  # a shares with b now
    producer = Producer(broker.bootstrap, events, RATE)
    producer.start()
    time.sleep(8)
    pending = metric(b, "persona_writeback_pending_events")
    assert pending > 20, pending  # b holds unwritten state for its customers
    os.kill(b.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        assert poll(lambda: active(a), lambda n: n == every, 60) == every  # a took b's over
        producer.join(timeout=len(events) / RATE + 60)  # a applies the rest of the stream
        assert producer.error is None and producer.sent == len(events)
        assert poll(lambda: {c: http("GET", f"{a.url}/v1/customers/{c}/profile", READ)
                             for c in final} == {c: (200, v) for c, v in final.items()},
                    lambda done: done, 60)
        time.sleep(max(2.0, frozen + SESSION_S + 2 - time.monotonic()))  # a has flushed
    finally:
        os.kill(b.pid, signal.SIGCONT)  # no later event would cover a late write of b's
    b.wait_ready(120)

    a.stop()  # b restores every partition from the changelog
    assert poll(lambda: active(b), lambda n: n == every, 90) == every
    wrong = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        wrong = {cid: got for cid in final
                 if (got := http("GET", f"{b.url}/v1/customers/{cid}/profile", READ))
                 != (200, final[cid])}
        if not wrong:
            break
        time.sleep(1)
    assert wrong == {}, (f"{len(wrong)} profiles off the fold, e.g. (got, want) " + "; ".join(
        f"{cid}: {got[1].get('event_counts') if got[0] == 200 else got[0]}, "
        f"{final[cid]['event_counts']}" for cid, got in list(wrong.items())[:3]))
    assert metric(b, "persona_writeback_abandoned_events_total") >= pending
    assert re.search(r"write-back: no group contact for [\d.]+ s \(write lease 5.0 s\); "
                     r"dropped the unwritten state of \d+ events", b.log.read_text())


def active(worker) -> int:
    status, body = get_json(f"{worker.url}/ready")
    return (body or {}).get("active_partitions", 0) if status == 200 else 0


def metric(worker, name: str) -> float:
    text = http("GET", f"{worker.url}/metrics", ADMIN)[1]
    found = re.search(rf"^{name} ([\d.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))
