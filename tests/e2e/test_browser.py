"""A real headless Chromium clicks through the demo shop served by a real worker.

Identity verification is on: the demo page is signed in as a ``demo-`` customer with the
identity hash its backend (the worker) wrote into it, and the order goes through the demo
backend since a publishable key may not send purchases. Then the profile is read over HTTP. A second page on another origin (``localhost`` vs
``127.0.0.1``) loads the SDK cross-origin: CORS, and sendBeacon on page hide.
Chromium and its driver come from Debian (``make test`` installs them when missing).
"""
from __future__ import annotations

import uuid

import orjson
import pytest

from app.auth.identity import identity_hash
from app.harness.cluster import Worker
from app.harness.net import http
from app.harness.ready import free_port
from tests.conftest import API_KEYS, READ
from tests.support.browser import chromium, require
from tests.support.cluster import Cluster, poll

pytestmark = pytest.mark.e2e
require()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PUBLISHABLE, SECRET = "test-publishable", "browser-identity-secret-0123456789"


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    cluster = Cluster(broker, tmp, f"{API_KEYS},{PUBLISHABLE}:publishable")
    port = free_port()
    w = Worker(broker, tmp / "worker.log", port, tmp / "data",
               {**cluster.env, "PERSONA_DEMO_KEY": PUBLISHABLE, "PERSONA_IDENTITY_SECRET": SECRET,
                "PERSONA_CORS_ORIGINS": f"http://localhost:{port}"})
    w.start().wait_ready()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def profile_when(worker, cid, events):
    got = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
               lambda r: r[0] == 200 and sum(r[1]["event_counts"].values()) >= events)
    assert got[0] == 200, (got, worker.tail(20))
    return got[1]


def test_shopping_session_builds_the_profile(worker, browser):
    cid = f"demo-{uuid.uuid4().hex[:8]}"
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
    click("purchase")  # via the demo backend (POST /demo/order), with the identity hash
    WebDriverWait(browser, 20).until(
        lambda d: "Thank you" in d.find_element(By.ID, "message").text)
    stats = browser.execute_script("return persona.stats()")
    assert stats["sent"] == 10 and stats["failures"] == 0 and stats["dropped"] == 0, stats

    p = profile_when(worker, cid, 11)
    assert p["event_counts"] == {"product_view": 3, "search": 1, "cart_add": 3, "cart_remove": 1,
                                 "payment_preference": 1, "checkout_start": 1, "purchase": 1}
    assert p["orders"] == 1 and p["total_spent"] == pytest.approx(179.8)
    assert p["currency"] == "EUR" and p["preferred_payment_method"] == "paypal"
    assert set(p["purchased_products"]) == {"sku-boots"}
    assert p["sessions"] == 1 and p["conversion_rate"] == 1.0
    status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
    assert status == 200 and session["cart"] == [] and len(session["recent_searches"]) == 1


def test_the_demo_signs_in_only_demo_customers(worker, browser):
    browser.get(f"{worker.url}/health")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get(f"{worker.url}/demo/shop?customer=victim-1")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "customer").text)
    anon = browser.find_element(By.ID, "customer").text
    assert anon.startswith("anon-") and "anonymous" in browser.find_element(By.ID, "message").text
    browser.find_element(By.ID, "view-sku-tent").click()
    assert browser.execute_async_script("persona.flush().then(() => arguments[0](persona.stats()))"
                                        )["sent"] == 1  # anonymous ids need no hash
    assert profile_when(worker, anon, 1)["event_counts"] == {"product_view": 1}
    assert http("GET", f"{worker.url}/v1/customers/victim-1/profile", READ)[0] == 404
    # Signing in with events of both ids queued: the SDK sends one request per customer.
    cid = f"demo-{uuid.uuid4().hex[:8]}"
    stats = browser.execute_async_script(SIGN_IN_WITH_QUEUED_EVENTS, cid,
                                         identity_hash(SECRET.encode(), cid))
    assert stats["sent"] == 3 and stats["dropped"] == 0 and stats["failures"] == 0, stats
    assert profile_when(worker, anon, 2)["event_counts"] == {"product_view": 1, "search": 1}
    assert profile_when(worker, cid, 1)["event_counts"] == {"search": 1}


SIGN_IN_WITH_QUEUED_EVENTS = """
const [cid, hash, done] = arguments;
persona.track("search", {query: "before sign-in"});
persona.identify(cid, {hash});
persona.track("search", {query: "after sign-in"});
persona.flush().then(() => done(persona.stats()));
"""


SDK_ON_OTHER_ORIGIN = """
const [sdk, endpoint, key, cid, hash, done] = arguments;
const s = document.createElement("script");
s.src = sdk;
s.onload = async () => {
  const heard = [];
  persona.init({endpoint, key, flushIntervalMs: 600000,
                onToken: (token, id, ids) => heard.push([token, id, ids.length])});
  persona.identify(cid, {hash});
  persona.track("product_view", {product_id: "x1"});
  await persona.flush();
  persona.track("product_view", {product_id: "x2"});  // left for sendBeacon on page hide
  done({...persona.stats(), token: persona.lastToken(), heard});
};
s.onerror = () => done("sdk did not load");
document.head.appendChild(s);
"""

PREFLIGHTED = """
const [url, key, cid, hash, done] = arguments;
fetch(url, {method: "POST", headers: {"Authorization": "Bearer " + key,
            "Content-Type": "application/json", "X-Persona-Identity-Hash": hash},
            body: JSON.stringify({type: "search", customer_id: cid, query: "cors"})})
  .then(r => r.json().then(b => done([r.status, b.accepted])), e => done(String(e)));
"""


def test_cross_origin_sdk_cors_and_beacon(worker, browser):
    cid = f"xorigin-{uuid.uuid4().hex[:8]}"
    allowed = f"http://localhost:{worker.port}"  # PERSONA_CORS_ORIGINS
    browser.get(f"{allowed}/health")
    signed = identity_hash(SECRET.encode(), cid)  # what the shop's backend hands the page
    stats = browser.execute_async_script(
        SDK_ON_OTHER_ORIGIN, f"{worker.url}/sdk/persona.js", worker.url, PUBLISHABLE, cid, signed)
    assert stats["sent"] == 1 and stats["failures"] == 0 and stats["pending"] == 1, stats
    assert stats["heard"] == [[stats["token"], cid, 1]] and stats["token"].startswith("v1.")
    status, body = http("GET", f"{worker.url}/v1/customers/{cid}/profile?after={stats['token']}",
                        READ)  # the shop's backend reads the page's write
    assert status == 200 and body["event_counts"] == {"product_view": 1}, (status, body)
    # Authorization and identity-hash headers make it a preflighted request: the OPTIONS
    # answer must allow both.
    got = browser.execute_async_script(PREFLIGHTED, f"{worker.url}/v1/events", PUBLISHABLE, cid,
                                       signed)
    assert got == [202, 1]
    browser.get("about:blank")  # page hide: the SDK hands the last event to sendBeacon
    p = profile_when(worker, cid, 3)
    assert p["event_counts"] == {"product_view": 2, "search": 1}

    # From an origin that is not allowed the browser refuses to hand over the answer.
    browser.get(f"{worker.url}/health")
    got = browser.execute_async_script(PREFLIGHTED, f"{allowed}/v1/events", PUBLISHABLE, cid,
                                       signed)
    assert "TypeError" in str(got)


def test_demo_backend_checks_the_identity_hash(worker):
    def order(cid, hash_=None):
        event = {"type": "purchase", "customer_id": cid, "order_id": f"o-{cid}", "total": 1.0,
                 "currency": "EUR", "items": [{"product_id": "p", "quantity": 1, "price": 1.0}]}
        headers = {"Content-Type": "application/json",
                   **({"X-Persona-Identity-Hash": hash_} if hash_ else {})}
        return http("POST", f"{worker.url}/demo/order", None, orjson.dumps(event), headers)
    cid = f"demo-{uuid.uuid4().hex[:8]}"
    assert order(cid)[0] == 403
    assert order(cid, identity_hash(SECRET.encode(), cid + "x"))[0] == 403
    assert order("victim-2", identity_hash(SECRET.encode(), "victim-2"))[0] == 400
    status, body = order(cid, identity_hash(SECRET.encode(), cid))
    assert status == 202 and body["accepted"] == 1
    assert profile_when(worker, cid, 1)["orders"] == 1
    assert http("GET", f"{worker.url}/v1/customers/victim-2/profile", READ)[0] == 404
