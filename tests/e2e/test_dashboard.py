"""``GET /dashboard`` in a real headless Chromium against a real worker: the key is asked
for and kept in sessionStorage (never in the URL), the uPlot charts are drawn, the KPI
numbers shown equal ``/v1/kpis`` for the same window and range, and the operational figures
move when events arrive."""
from __future__ import annotations

import orjson
import pytest

from app.cli.otto import load_sample
from app.harness.net import http
from bench.gen import generate
from tests.conftest import API_KEYS
from tests.support.browser import chromium, require
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
require()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

DASH = "test-dashboard-key"


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    cluster = Cluster(broker, tmp_path_factory.mktemp("dashboard"),
                      f"{API_KEYS},{DASH}:read|metrics")
    w = cluster.start()
    broker.produce(load_sample())
    yield w
    cluster.stop_all()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium"), None, ["--window-size=1400,2200"])
    yield driver
    driver.quit()


def text(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def percent(rate) -> str:
    return "–" if rate is None else f"{rate * 100:.2f} %"


def shown_equals_api(browser, worker) -> None:
    rng = browser.find_element(By.ID, "kpi-range")
    query = "window={}&from={}&to={}".format(*(rng.get_attribute(f"data-{a}")
                                               for a in ("window", "from", "to")))
    status, body = http("GET", f"{worker.url}/v1/kpis?{query}", DASH)
    assert status == 200, body
    totals = body["totals"]
    for name in ("events", "sessions", "sessions_with_purchase", "carts_opened",
                 "carts_abandoned", "orders", "active_customers"):
        assert text(browser, f"kpi-{name}") == str(totals[name]), name
    assert text(browser, "kpi-conversion_rate") == percent(totals["conversion_rate"])
    assert text(browser, "kpi-abandonment_rate") == percent(totals["abandonment_rate"])
    for currency, r in totals["revenue"].items():
        cells = text(browser, f"revenue-{currency}").split()
        cents = r["revenue_cents"]
        assert cells == [currency, str(r["orders"]), f"{cents // 100}.{cents % 100:02d}",
                         f"{r['average_order_value']:.2f}"]
    size = {"1m": 60_000, "1d": 86_400_000}[body["window"]]
    drawn = browser.execute_script("return dashboard.charts.counts.data")
    assert len(drawn[0]) == -(-(body["to"] - body["from"]) // size)  # every window of the range
    sessions = dict(zip(drawn[0], drawn[1], strict=True))
    assert body["series"] and all(sessions[s["start"] / 1000] == s["sessions"]
                                  for s in body["series"])


def test_the_dashboard_shows_the_kpis_and_the_live_figures(worker, browser, broker):
    browser.get(f"{worker.url}/dashboard")
    browser.find_element(By.ID, "key").send_keys(DASH)
    browser.find_element(By.ID, "use-key").click()
    assert DASH not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('persona.dashboard.key')") == DASH
    # the OTTO sample is from 2022: following the newest data, the last 60 minutes with data
    WebDriverWait(browser, 60).until(lambda d: text(d, "kpi-events") not in ("–", "0"))
    shown_equals_api(browser, worker)
    assert browser.execute_script("return document.querySelectorAll('.uplot canvas').length") == 6

    Select(browser.find_element(By.ID, "window")).select_by_value("1d")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "kpi-range").get_attribute("data-window") == "1d"
        and text(d, "kpi-orders") not in ("–", "0"))
    shown_equals_api(browser, worker)
    assert text(browser, "kpi-orders") == "5"  # every order of the sample is in 30 days

    broker.produce([orjson.loads(v) for _, v in generate(50, 600, 21)])
    ops = poll(lambda: browser.execute_script(
        "return dashboard.ops.map(o => [o.rate, o.p50, o.p99])"),
        lambda h: any(r and r > 0 for r, _, _ in h) and any(p for _, p, _ in h), 60)
    assert any(r and r > 0 for r, _, _ in ops) and any(p99 for _, _, p99 in ops), ops
    status = text(browser, "status")
    assert status.startswith("updated"), status
    browser.save_screenshot(str(worker.log.parent / "dashboard.png"))
