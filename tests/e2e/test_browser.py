"""A real headless Chromium clicks through the demo shop served by a real worker.

Then the profile is read over HTTP. A second page on another origin (``localhost`` vs
``127.0.0.1``) loads the SDK cross-origin: CORS, and sendBeacon on page hide.
Chromium and its driver come from Debian (``make test`` installs them when missing).
"""
from __future__ import annotations

import os
import shutil
import uuid

import pytest

from app.local import Worker, free_port, http
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (dev extra)")
if not (CHROMIUM and DRIVER):
    pytest.skip("chromium/chromedriver not installed: apt-get install chromium chromium-driver "
                "(make test does it)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    cluster = Cluster(broker, tmp, API_KEYS)
    port = free_port()
    w = Worker(broker, tmp / "worker.log", port, tmp / "data",
               {**cluster.env, "PERSONA_DEMO_KEY": INGEST,
                "PERSONA_CORS_ORIGINS": f"http://localhost:{port}"})
    w.start().wait_ready()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def profile_when(worker, cid, events):
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and sum(r[1]["event_counts"].values()) >= events)
    assert got[0] == 200, (got, worker.tail(20))
    return got[1]


def test_shopping_session_builds_the_profile(worker, browser):
    cid = f"browser-{uuid.uuid4().hex[:8]}"
    browser.get(f"{worker.url}/demo/shop?customer={cid}")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "customer").text == cid)
    click = lambda element_id: browser.find_element(By.ID, element_id).click()  # noqa: E731
    for sku in ("sku-boots", "sku-tent", "sku-mug"):
        click(f"view-{sku}")
    browser.find_element(By.ID, "search").send_keys("shoes")
    click("search-button")
    assert not browser.find_element(By.ID, "product-sku-lamp").is_displayed()
    click("add-sku-boots")
    click("add-sku-boots")
    browser.find_element(By.ID, "search").clear()
    click("search-button")  # an empty search shows everything and is not tracked
    click("add-sku-mug")
    click("remove-sku-mug")
    Select(browser.find_element(By.ID, "payment")).select_by_value("paypal")
    click("checkout")
    click("purchase")
    assert "Thank you" in browser.find_element(By.ID, "message").text
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return persona.stats()")["sent"] == 11)
    assert browser.execute_script("return persona.stats()")["failures"] == 0

    p = profile_when(worker, cid, 11)
    assert p["event_counts"] == {"product_view": 3, "search": 1, "cart_add": 3, "cart_remove": 1,
                                 "payment_preference": 1, "checkout_start": 1, "purchase": 1}
    assert p["orders"] == 1 and p["total_spent"] == pytest.approx(179.8)
    assert p["currency"] == "EUR" and p["preferred_payment_method"] == "paypal"
    assert set(p["purchased_products"]) == {"sku-boots"}
    assert p["sessions"] == 1 and p["conversion_rate"] == 1.0
    status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
    assert status == 200 and session["cart"] == [] and len(session["recent_searches"]) == 1


SDK_ON_OTHER_ORIGIN = """
const [sdk, endpoint, key, cid, done] = arguments;
const s = document.createElement("script");
s.src = sdk;
s.onload = async () => {
  persona.init({endpoint, key, flushIntervalMs: 600000});
  persona.identify(cid);
  persona.track("product_view", {product_id: "x1"});
  await persona.flush();
  persona.track("product_view", {product_id: "x2"});  // left for sendBeacon on page hide
  done(persona.stats());
};
s.onerror = () => done("sdk did not load");
document.head.appendChild(s);
"""

PREFLIGHTED = """
const [url, key, cid, done] = arguments;
fetch(url, {method: "POST", headers: {"Authorization": "Bearer " + key,
            "Content-Type": "application/json"},
            body: JSON.stringify({type: "search", customer_id: cid, query: "cors"})})
  .then(r => r.json().then(b => done([r.status, b.accepted])), e => done(String(e)));
"""


def test_cross_origin_sdk_cors_and_beacon(worker, browser):
    cid = f"xorigin-{uuid.uuid4().hex[:8]}"
    allowed = f"http://localhost:{worker.port}"  # PERSONA_CORS_ORIGINS
    browser.get(f"{allowed}/health")
    stats = browser.execute_async_script(
        SDK_ON_OTHER_ORIGIN, f"{worker.url}/sdk/persona.js", worker.url, INGEST, cid)
    assert stats["sent"] == 1 and stats["failures"] == 0 and stats["pending"] == 1, stats
    # An Authorization header makes it a preflighted request: the OPTIONS answer must allow it.
    got = browser.execute_async_script(PREFLIGHTED, f"{worker.url}/v1/events", INGEST, cid)
    assert got == [202, 1]
    browser.get("about:blank")  # page hide: the SDK hands the last event to sendBeacon
    p = profile_when(worker, cid, 3)
    assert p["event_counts"] == {"product_view": 2, "search": 1}

    # From an origin that is not allowed the browser refuses to hand over the answer.
    browser.get(f"{worker.url}/health")
    got = browser.execute_async_script(PREFLIGHTED, f"{allowed}/v1/events", INGEST, cid)
    assert "TypeError" in str(got)
