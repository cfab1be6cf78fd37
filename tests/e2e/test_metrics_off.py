"""``PERSONA_METRICS=off`` end to end: one real worker on the real bundled broker still applies
every event (profiles equal the rules' fold) and serves KPIs, while ``GET /metrics`` and
``GET /v1/ops`` answer 404 naming the setting, after the usual 401/403 key checks; the
dashboard (headless Chromium, skipped without it) says so and still shows the KPIs."""
from __future__ import annotations

import pytest

from app.harness.net import http
from app.rules import profile_state
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.browser import CHROMIUM, DRIVER, chromium
from tests.support.builders import view_add_buy
from tests.support.cluster import Cluster, poll
from tests.support.expected import fold

pytestmark = pytest.mark.e2e

METRICS_KEY = "test-metrics-off"
T0 = 1_700_000_000_000  # 2023-11-14 22:13 UTC
DAY_START, DAY_END = 1_699_920_000_000, 1_700_006_400_000
CUSTOMERS = [f"moff-{i}" for i in range(4)]


def events() -> list:
    return view_add_buy(CUSTOMERS, CUSTOMERS[0], T0)


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


def test_the_dashboard_says_metrics_off_and_still_shows_the_kpis(worker, tmp_path):
    pytest.importorskip("selenium.webdriver", reason="selenium not installed (dev extra)")
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium/chromedriver not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium(tmp_path, None)
    try:
        browser.get(f"{worker.url}/dashboard")
        browser.find_element(By.ID, "key").send_keys(METRICS_KEY)
        browser.find_element(By.ID, "use-key").click()
        WebDriverWait(browser, 30).until(
            lambda d: d.find_element(By.ID, "kpi-events").text == str(len(events())))
        off = browser.find_element(By.ID, "ops-off")
        assert off.is_displayed() and "PERSONA_METRICS=off" in off.text, off.text
        status = browser.find_element(By.ID, "status").text
        assert status.startswith("updated"), status
    finally:
        browser.quit()
