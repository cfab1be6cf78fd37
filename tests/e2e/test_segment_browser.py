"""analytics.js (``@segment/analytics-next``, the npm package pinned in
``tests/browser_segment/package-lock.json``, installed by ``make test`` with ``npm ci``) in
headless Chromium, sending to a real worker.

A shop page on its own origin (a local server in this process) loads the package's UMD build,
with its settings inline (``cdnSettings``) and its chunks served locally, so nothing is
fetched from Segment: Chromium's network log must name local URLs only. Its API host is
``<worker>/segment/v1`` with the page's publishable key as write key (identity verification
on: anonymous visitors need no hash). The page view, two product views and an add to cart
reach the anonymous profile (the page view is counted, not stored); then, at sign-in, the
shop's backend sends ``identify`` with its server key (segment-analytics-python) and the
anonymous activity is merged into the customer.
"""
from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest
from aiohttp import web

from app.harness.net import http
from app.harness.ready import free_port
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.browser import chromium, requested_urls, require
from tests.support.cluster import Cluster, poll
from tests.support.segment import segment_calls

pytestmark = pytest.mark.e2e
require()

PUBLISHABLE, SECRET = "test-publishable-ajs", "segment-identity-secret-0123456789"
UMD = (Path(__file__).resolve().parents[1] / "browser_segment" / "node_modules" / "@segment"
       / "analytics-next" / "dist" / "umd")
PAGE = """<!doctype html><html><head><title>Shop</title>
<script>window.analytics = {_cdn: location.origin};  // analytics.js loads its chunks from here
</script><script src="/analytics-next/bundles/index.js"></script></head>
<body><h1>Shop</h1></body></html>"""
SHOP = """
const [writeKey, apiHost, done] = arguments;
const segment = {apiKey: writeKey, apiHost, protocol: "http"};
AnalyticsNext.AnalyticsBrowser.load(
  {writeKey, cdnURL: location.origin,
   cdnSettings: {integrations: {"Segment.io": segment}, metrics: {sampleRate: 0}}},
  {integrations: {"Segment.io": segment}, retryQueue: false}
).then(async ([analytics]) => {
  const sent = [];
  sent.push(await analytics.page("Home"));
  sent.push(await analytics.track("Product Viewed",
                                  {product_id: "p-boots", category: "shoes", price: 89.9}));
  sent.push(await analytics.track("Product Viewed",
                                  {product_id: "p-tent", category: "camping", price: 120}));
  sent.push(await analytics.track("Product Added", {product_id: "p-tent", category: "camping",
                                                    price: 120, quantity: 1}));
  done({anonymousId: analytics.user().anonymousId(),
        failed: sent.filter(ctx => ctx.failedDelivery()).length, sent: sent.length});
}, error => done({error: String(error)}));
"""


class ShopServer:
    """The shop's page and the analytics.js build, on their own origin; records every path."""

    def __init__(self):
        self.port, self.paths = free_port(), []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def page(self, request):
        self.paths.append(request.path)
        return web.Response(text=PAGE, content_type="text/html")

    async def bundle(self, request):
        self.paths.append(request.path)
        path = (UMD / request.match_info["name"]).resolve()
        if path.parent != UMD.resolve() or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/analytics-next/bundles/{name}", self.bundle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> "ShopServer":
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(10)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def shop():
    assert (UMD / "index.js").is_file(), ("@segment/analytics-next is not installed: run "
                                          "make test (npm ci --prefix tests/browser_segment)")
    s = ShopServer().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def worker(broker, shop, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("segment-browser"),
                f"{API_KEYS},{PUBLISHABLE}:publishable",
                env={"PERSONA_IDENTITY_SECRET": SECRET, "PERSONA_CORS_ORIGINS": shop.origin})
    yield c.start()
    c.stop_all()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium"), script_timeout=60, network_log=True)
    yield driver
    driver.quit()


def test_analytics_next_fills_the_anonymous_profile_and_identify_merges_it(worker, shop,
                                                                           browser):
    before = segment_calls(worker)
    browser.get(shop.origin)
    got = browser.execute_async_script(SHOP, PUBLISHABLE, f"127.0.0.1:{worker.port}/segment/v1")
    assert got.get("sent") == 4 and got["failed"] == 0, got
    anon = f"anon-{got['anonymousId']}"
    profile = poll(lambda: http("GET", f"{worker.url}/v1/customers/{anon}/profile", READ),
                   lambda r: r[0] == 200 and sum(r[1]["event_counts"].values()) >= 3)
    assert profile[0] == 200, (profile, worker.tail(30))
    assert profile[1]["event_counts"] == {"product_view": 2, "cart_add": 1}, profile
    status, session = http("GET", f"{worker.url}/v1/customers/{anon}/activity", READ)
    assert [line["product_id"] for line in session["cart"]] == ["p-tent"], session
    after = segment_calls(worker)
    assert after[("page", "unused")] - before.get(("page", "unused"), 0) == 1
    assert after[("track", "stored")] - before.get(("track", "stored"), 0) == 3

    # Nothing left this machine: the page, the build and its calls were all local.
    urls = requested_urls(browser)
    assert any(u.startswith(f"{worker.url}/segment/v1/t") for u in urls), urls
    network = [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert [u for u in network if not u.startswith("http://127.0.0.1:")] == [], network
    assert "/analytics-next/bundles/index.js" in shop.paths

    # Sign-in: the shop's backend identifies the visitor with its server key.
    from segment.analytics import Client
    cid, errors = f"ajs-{uuid.uuid4().hex[:8]}", []
    backend = Client(write_key=INGEST, host=f"{worker.url}/segment",
                     on_error=lambda exc, batch: errors.append(exc))
    backend.identify(user_id=cid, anonymous_id=got["anonymousId"], traits={"plan": "gold"})
    backend.flush()
    assert errors == []
    merged = poll(lambda: http("GET", f"{worker.url}/v1/customers/{cid}/profile", READ),
                  lambda r: r[0] == 200 and sum(r[1]["event_counts"].values()) >= 3)
    assert merged[0] == 200 and merged[1]["event_counts"] == {"product_view": 2, "cart_add": 1}
    status, session = http("GET", f"{worker.url}/v1/customers/{cid}/activity", READ)
    assert [line["product_id"] for line in session["cart"]] == ["p-tent"], session
    status, gone = http("GET", f"{worker.url}/v1/customers/{anon}/profile", READ)
    assert status == 404 and gone["merged_into"] == cid
