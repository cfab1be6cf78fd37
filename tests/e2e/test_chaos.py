"""Chaos: while a producer replays events at a steady rate into 2-3 real workers, add a
worker, stop one gracefully, kill -9 one and restart it, and wipe one's data dir
before restart. Every HTTP answer seen meanwhile must be true (the profile after
some prefix of that customer's events), a 503, or a 404 for a customer never seen;
at the end every profile equals the pure fold of all events.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import orjson
import pytest

from app.cli.otto import load_sample
from app.harness.net import http
from tests.conftest import READ
from tests.support.cluster import poll
from tests.support.stream import Producer, synthetic, truths

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.brokers("tansu", "kafka")]
RATE = 60.0  # events/s


class Reader(threading.Thread):
    """Reads random customers from random live workers and checks every answer."""

    def __init__(self, workers, customers, truth):
        super().__init__(daemon=True)
        self.workers, self.customers, self.truth = workers, customers, truth
        self.stop_flag = threading.Event()
        self.statuses, self.violations = Counter(), []
        self.seen_ok: set = set()
        self.unavailable_spans: list[float] = []

    def run(self):
        rnd = random.Random(3)
        first_503 = None
        while not self.stop_flag.is_set():
            live = [w for w in self.workers if w.alive()]
            if not live:
                time.sleep(0.1)
                continue
            w, cid = rnd.choice(live), rnd.choice(self.customers)
            try:
                status, body = http("GET", f"{w.url}/v1/customers/{cid}/profile", READ, timeout=10)
            except OSError:
                continue  # the worker just went away: no HTTP answer at all
            self.statuses[status] += 1
            now = time.strftime("%H:%M:%S")
            if status == 200:
                if orjson.dumps(body, option=orjson.OPT_SORT_KEYS) not in self.truth[cid]:
                    self.violations.append(("wrong value", now, cid, w.port, body))
                self.seen_ok.add(cid)
            elif status == 404:
                if cid in self.seen_ok:
                    self.violations.append(("404 after a value", now, cid, w.port))
            elif status != 503:
                self.violations.append((f"status {status}", now, cid, w.port, body))
            if status == 503:
                first_503 = first_503 or time.monotonic()
            elif first_503 is not None:
                self.unavailable_spans.append(time.monotonic() - first_503)
                first_503 = None


def timed_start(cluster, **kw):
    t = time.monotonic()
    w = cluster.start(wait=False, **kw)
    w.wait_ready()
    return w, time.monotonic() - t


def test_chaos(broker, cluster):
    events = load_sample() + synthetic(60, 30)
    events.sort(key=lambda e: e["ts"])  # a steady mix of customers, per-customer order kept
    truth, final = truths(events)
    customers = sorted(final)
    a, ready_a = timed_start(cluster)
    b, _ = timed_start(cluster)
    producer = Producer(broker.bootstrap, events, RATE)
    reader = Reader(cluster.workers, customers, truth)
    producer.start()
    reader.start()
    ready_times = [ready_a]

    time.sleep(8)
    c, t = timed_start(cluster)                      # add a worker
    ready_times.append(t)
    time.sleep(6)
    b.stop()                                         # graceful stop
    time.sleep(6)
    a.kill()                                         # kill -9, then restart on its data
    a.start()
    a.wait_ready()
    time.sleep(6)
    c.stop()                                         # restart with its data dir wiped
    c.wipe()
    t0 = time.monotonic()
    c.start()
    c.wait_ready()
    ready_times.append(time.monotonic() - t0)

    producer.join(timeout=len(events) / RATE + 120)
    assert producer.error is None, repr(producer.error)
    assert producer.sent == len(events)
    live = [w for w in cluster.workers if w.alive()]
    for cid in customers:
        w = live[customers.index(cid) % len(live)]
        got = poll(lambda w=w, cid=cid: http("GET", f"{w.url}/v1/customers/{cid}/profile", READ),
                   lambda r, cid=cid: r == (200, final[cid]), timeout=120)
        if got[0] == 200 and got[1] != final[cid]:
            diff = {k: (got[1].get(k), v) for k, v in final[cid].items() if got[1].get(k) != v}
            pytest.fail(f"{cid} differs (got, want): {diff}\n{[w.log for w in cluster.workers]}")
        assert got == (200, final[cid]), (cid, got)
    reader.stop_flag.set()
    reader.join(30)
    print(f"\nchaos: {len(events)} events, answers {dict(reader.statuses)}, "
          f"ready after start {[round(x, 1) for x in ready_times]} s, "
          f"longest 503 run {max(reader.unavailable_spans, default=0):.1f} s")
    assert not reader.violations, reader.violations[:5]
    assert reader.statuses[200] > 0
