"""The browser SDK in a real headless Chromium backs off on 429 and loses nothing.

A worker limits the publishable key per client address (``PERSONA_RATE_PUBLISHABLE`` 2
events per second, burst 2). The page loads ``/sdk/persona.js`` from the worker, queues
eight events of one customer and keeps calling ``persona.flush()`` (one event per request,
``maxBatch: 1``): the worker answers 429 with ``Retry-After`` once the bucket is empty, the
SDK waits at least that long and sends the same events again. Every event must arrive
exactly once (the profile counts eight), the SDK must have seen the 429s (``failures``),
and the worker must have counted them (``persona_rate_limited_total``).
"""
from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.harness.cluster import Worker
from app.harness.net import http
from app.harness.ready import free_port
from tests.conftest import API_KEYS, READ
from tests.support.browser import chromium, require
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
require()

PUBLISHABLE, METRICS_KEY = "rl-publishable-0123456789", "rl-metrics-0123456789"
EVENTS = 8


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-rl")
    cluster = Cluster(broker, tmp, f"{API_KEYS},{PUBLISHABLE}:publishable,{METRICS_KEY}:metrics")
    w = Worker(broker, tmp / "worker.log", free_port(), tmp / "data",
               {**cluster.env, "PERSONA_RATE_PUBLISHABLE": "2/s:2"})
    w.start().wait_ready()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-rl"), 60)
    yield driver
    driver.quit()


SEND_UNTIL_ALL_ACCEPTED = """
const [sdk, endpoint, key, cid, n, done] = arguments;
const s = document.createElement("script");
s.src = sdk;
s.onload = async () => {
  persona.init({endpoint, key, flushIntervalMs: 600000, maxBatch: 1, maxBackoffMs: 4000});
  persona.identify(cid);
  for (let i = 0; i < n; i++) persona.track("product_view", {product_id: "p" + i});
  const t0 = Date.now();
  while (persona.stats().sent < n && Date.now() - t0 < 45000) {
    await persona.flush();
    await new Promise(r => setTimeout(r, 100));
  }
  done({...persona.stats(), ms: Date.now() - t0});
};
s.onerror = () => done("sdk did not load");
document.head.appendChild(s);
"""


def limited(worker) -> float:
    status, text = http("GET", f"{worker.url}/metrics", METRICS_KEY)
    assert status == 200 and isinstance(text, str), (status, text)
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "persona_rate_limited_total"
               and sample.labels.get("kind") == "publishable")


def test_sdk_backs_off_on_429_and_every_event_arrives_once(worker, browser):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    browser.get(f"{worker.url}/health")
    stats = browser.execute_async_script(SEND_UNTIL_ALL_ACCEPTED, f"{worker.url}/sdk/persona.js",
                                         worker.url, PUBLISHABLE, cid, EVENTS)
    assert isinstance(stats, dict), stats
    assert stats["sent"] == EVENTS and stats["dropped"] == 0, stats
    assert stats["failures"] >= 1, stats  # it did meet the limit
    # 2 per second after a burst of 2: the last events cannot have gone before ~2.5 s
    assert stats["ms"] >= 2000, stats
    assert limited(worker) >= stats["failures"]
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and r[1]["event_counts"].get("product_view") == EVENTS)
    assert got[0] == 200 and got[1]["event_counts"] == {"product_view": EVENTS}, (
        got, worker.tail(20))
