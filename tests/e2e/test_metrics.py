"""``GET /metrics`` end to end: a real broker, one real worker, a known event stream (with
invalid events and a duplicate), a webhook receiver that fails once; the scraped values,
parsed with prometheus-client's parser, must add up."""
from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.harness.net import http
from tests.conftest import ADMIN, API_KEYS, INGEST, READ
from tests.support.builders import view_add_buy
from tests.support.cluster import poll
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

METRICS_KEY = "test-metrics-0123456789"
T0 = 1_700_000_000_000
CUSTOMERS = [f"mx-{i}" for i in range(6)]
PROFILE = "/v1/customers/{customer_id}/profile"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def events() -> list:
    out = view_add_buy(CUSTOMERS, "mx-0", T0)
    out.append(out[0])  # redelivered
    return out


INVALID = [b'{"event_id": "mx-bad-1", "type": "product_view", "customer_id": "mx-9", "ts": 1',
           b'{"event_id": "mx-bad-2", "type": "cart_add", "customer_id": "mx-8", "ts": 1}']
EVENT_IDS = {e["event_id"] for e in events()} | {"mx-bad-1", "mx-bad-2"}


def scrape(worker, key: str | None = METRICS_KEY) -> tuple[int, str, str]:
    request = urllib.request.Request(f"{worker.url}/metrics",
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with _DIRECT.open(request, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def samples(text: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def total(found: list, name: str, **labels) -> float:
    return sum(s.value for s in found
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_add_up_for_a_known_stream(broker, cluster):
    receiver = Receiver().start()
    receiver.rule = lambda call: 500 if call["n"] == 0 else 200  # first attempt fails
    hooks = [{"id": "hooks", "url": receiver.url("hooks"), "secret": "s3cret-s3cret-s3cret",
              "events": ["purchase.completed"], "timeout_s": 5}]
    try:
        worker = cluster.start(env={
            "PERSONA_API_KEYS": f"{API_KEYS},{METRICS_KEY}:metrics",
            "PERSONA_WEBHOOKS": orjson.dumps(hooks).decode(),
            "PERSONA_WEBHOOK_BACKOFF_S": "0.05", "PERSONA_FLUSH_INTERVAL_S": "0.5"})
        sent = events() + INVALID
        broker.produce(sent)
        valid = len({e["event_id"] for e in events()})  # 14: 13 + nothing new for the copy

        def settled(result):
            found = samples(result[2]) if result[0] == 200 else []
            return (total(found, "persona_events_total") == len(sent)
                    and total(found, "persona_event_freshness_seconds_count",
                              stage="durable") == valid + 1
                    and total(found, "persona_webhooks_total", outcome="delivered") == 1
                    and total(found, "persona_consumer_lag", topic="events") == 0)

        status, ctype, text = poll(lambda: scrape(worker), settled, timeout=60)
        assert settled((status, ctype, text)), f"{text}\n{worker.tail(30)}"
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype

        # Reads: a hit, a miss, and one answered for a (pretend) forwarding peer.
        url = f"{worker.url}/v1/customers/mx-1/profile"
        assert http("GET", url, READ)[0] == 200
        assert http("GET", f"{worker.url}/v1/customers/mx-404/profile", READ)[0] == 404
        assert http("GET", url, READ, headers={"X-Persona-Forwarded": "1"})[0] == 200
        # Auth of /metrics itself: 401 without a key, 403 without the scope.
        assert scrape(worker, None)[0] == 401
        assert scrape(worker, "wrong")[0] == 401
        assert scrape(worker, READ)[0] == 403 and scrape(worker, INGEST)[0] == 403
        assert scrape(worker, ADMIN)[0] == 200
        found = samples(scrape(worker)[2])

        # Events: every one sent is counted once, by outcome, type and reason.
        assert total(found, "persona_events_total", outcome="applied") == valid
        assert total(found, "persona_events_total", outcome="duplicate",
                     type="product_view") == 1
        assert total(found, "persona_events_total", outcome="dead_lettered",
                     reason="malformed JSON", type="unknown") == 1
        assert total(found, "persona_events_total", outcome="dead_lettered",
                     reason="invalid cart_add event", type="cart_add") == 1
        assert total(found, "persona_events_total", outcome="applied", type="purchase") == 1
        # Freshness has every event that reached the state, readable and durable.
        for stage in ("readable", "durable"):
            assert total(found, "persona_event_freshness_seconds_count", stage=stage) == valid + 1
            inf = total(found, "persona_event_freshness_seconds_bucket", stage=stage, le="+Inf")
            assert inf == valid + 1
        assert total(found, "persona_batch_events_sum") == len(sent)
        assert total(found, "persona_changelog_records_total", table="profiles") >= len(CUSTOMERS)
        # Webhooks: one purchase, failed once, then delivered on attempt 2.
        assert total(found, "persona_webhooks_total", subscription="hooks",
                     outcome="retried") == 1
        assert total(found, "persona_webhook_attempts_sum", subscription="hooks") == 2
        assert total(found, "persona_webhook_delivery_seconds_count", subscription="hooks") == 1
        # HTTP by route template, never the raw path.
        assert total(found, "persona_http_requests_total", route=PROFILE, method="GET",
                     status="200", routing="local") >= 1
        assert total(found, "persona_http_requests_total", route=PROFILE,
                     status="404") == 1
        assert total(found, "persona_http_requests_total", route=PROFILE,
                     routing="for_peer") == 1
        assert total(found, "persona_http_requests_total", route="/metrics", status="403") == 2
        assert total(found, "persona_http_request_seconds_count", route=PROFILE) >= 3
        assert total(found, "persona_ready") == 1
        assert total(found, "persona_rebalances_total") >= 1
        assert {s.labels["topic"] for s in found if s.name == "persona_consumer_lag"} == {
            "events", "webhook-deliveries"}
        # No label value holds a customer id or an event id.
        ids = set(CUSTOMERS) | {"mx-404", "mx-8", "mx-9"} | EVENT_IDS
        values = {v for s in found for v in s.labels.values()}
        assert not {v for v in values if any(i in v for i in ids)}, values
    finally:
        receiver.stop()
