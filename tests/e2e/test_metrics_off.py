"""``PERSONA_METRICS=off`` end to end: one real worker on the real bundled broker still applies
every event (profiles equal the rules' fold) and serves KPIs, while ``GET /metrics`` and
``GET /v1/ops`` answer 404 naming the setting, after the usual 401/403 key checks."""
from __future__ import annotations

import pytest

from app.local import http
from app.rules import profile_state
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll
from tests.support.expected import fold

pytestmark = pytest.mark.e2e

METRICS_KEY = "test-metrics-off"
T0 = 1_700_000_000_000  # 2023-11-14 22:13 UTC
DAY_START, DAY_END = 1_699_920_000_000, 1_700_006_400_000
CUSTOMERS = [f"moff-{i}" for i in range(4)]


def events() -> list:
    out = []
    for n, cid in enumerate(CUSTOMERS):
        out.append({"event_id": f"{cid}-v", "type": "product_view", "customer_id": cid,
                    "ts": T0 + n, "product_id": "p1", "category": "shoes", "price": 10.0})
        out.append({"event_id": f"{cid}-a", "type": "cart_add", "customer_id": cid,
                    "ts": T0 + 1000 + n, "product_id": "p1", "quantity": 1, "price": 10.0})
    out.append({"event_id": "moff-0-buy", "type": "purchase", "customer_id": CUSTOMERS[0],
                "ts": T0 + 5000, "order_id": "o-1", "total": 10.0, "currency": "EUR",
                "items": [{"product_id": "p1", "quantity": 1, "price": 10.0}]})
    return out


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    cluster = Cluster(broker, tmp_path_factory.mktemp("metrics-off"),
                      f"{API_KEYS},{METRICS_KEY}:metrics|read", {"PERSONA_METRICS": "off"})
    w = cluster.start()
    broker.produce(events())
    yield w
    cluster.stop_all()


def test_events_are_applied_with_metrics_off(worker):
    expected = fold(events())
    assert sorted(expected) == sorted(CUSTOMERS)
    for cid in CUSTOMERS:
        want = (200, profile_state.view(expected[cid][1]))
        got = poll(lambda cid=cid: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
                   lambda r, want=want: r == want)
        assert got == want, f"{cid}: {got}\n{worker.tail(20)}"
    # Business KPIs are not metrics: still answered.
    url = f"{worker.url}/v1/kpis?window=1d&from={DAY_START}&to={DAY_END}"
    status, body = poll(lambda: http("GET", url, METRICS_KEY),
                        lambda r: r[0] == 200 and r[1]["totals"]["orders"] == 1, timeout=30)
    assert status == 200 and body["totals"]["orders"] == 1, body
    assert body["totals"]["events"] == len(events()), body


@pytest.mark.parametrize("path", ["/metrics", "/v1/ops"])
def test_metrics_routes_answer_404_naming_the_setting(worker, path):
    assert http("GET", f"{worker.url}{path}")[0] == 401
    assert http("GET", f"{worker.url}{path}", "wrong")[0] == 401
    assert http("GET", f"{worker.url}{path}", READ)[0] == 403
    assert http("GET", f"{worker.url}{path}", INGEST)[0] == 403
    status, body = http("GET", f"{worker.url}{path}", METRICS_KEY)
    assert status == 404, body
    assert body["error"] == "metrics off" and "PERSONA_METRICS=off" in body["detail"]
    assert worker.alive()
