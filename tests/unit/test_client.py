"""app.client against a scripted in-process HTTP server: batching, retries, helpers."""
from __future__ import annotations

import asyncio
import threading

import aiohttp
import orjson
import pytest
from aiohttp import web

from app.client import AsyncPersonaClient, PersonaClient, PersonaError, batches
from app.consistency.positions import decode, encode
from app.harness.ready import free_port
from app.rules.events import SHOP_TYPES, validate_dict


class Scripted:
    """Answers POST /v1/events with the queued (status, headers) answers, then 202."""

    def __init__(self):
        self.answers, self.requests = [], []
        self.reads, self.queries = [], []  # GET answers (status, headers, body); their URLs
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request):
        body = await request.read()
        self.requests.append((dict(request.headers), orjson.loads(body)))
        status, headers = self.answers.pop(0) if self.answers else (202, {})
        if status == 202:
            events = orjson.loads(body)
            n = len(self.requests)  # token: offset n of partition n % 2
            return web.json_response({"accepted": len(events),
                                      "event_ids": [e["event_id"] for e in events],
                                      "token": encode({n % 2: n})}, status=202)
        return web.json_response({"error": f"scripted {status}"}, status=status, headers=headers)

    async def read(self, request):
        self.queries.append(request.rel_url)
        status, headers, body = self.reads.pop(0) if self.reads else (200, {}, {"ok": 1})
        return web.json_response(body, status=status, headers=headers)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/events", self.handle)
        app.router.add_get("/v1/customers/{cid}/{what}", self.read)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def server():
    s = Scripted().start()
    yield s
    s.stop()


def client(server, **kw):
    return PersonaClient(server.url, "k", backoff_s=0.01, **kw)


def test_batches_respect_both_limits():
    events = [{"n": i, "pad": "x" * 10} for i in range(7)]
    assert [len(b) for b in batches(events, 3, 10_000)] == [3, 3, 1]
    one = len(orjson.dumps(events[0]))
    assert [len(b) for b in batches(events, 100, 2 + 2 * (one + 1))] == [2, 2, 2, 1]
    for batch in batches(events, 100, 60):
        assert len(b"[" + b",".join(batch) + b"]") <= 60 or len(batch) == 1


def test_send_splits_and_sets_ids(server):
    with client(server, max_events=3) as c:
        result = c.send([{"type": "search", "customer_id": "c1", "query": str(i)}
                         for i in range(7)])
    assert result.accepted == 7 and len(set(result.event_ids)) == 7
    assert [len(body) for _, body in server.requests] == [3, 3, 1]
    headers = server.requests[0][0]
    assert headers["Authorization"] == "Bearer k" and headers["Content-Type"] == "application/json"
    assert all("ts" in e and "event_id" in e for _, body in server.requests for e in body)


def test_retries_503_with_the_same_event_ids(server):
    server.answers = [(503, {"Retry-After": "0"}), (502, {}), (429, {})]
    with client(server) as c:
        result = c.cart_add("c1", "p1", 2, price=3.0)
    assert result.accepted == 1
    bodies = [body for _, body in server.requests]
    assert len(bodies) == 4 and all(b == bodies[0] for b in bodies)


def test_gives_up_after_retries(server):
    server.answers = [(503, {})] * 10
    with client(server, retries=2) as c, pytest.raises(PersonaError) as err:
        c.search("c1", "boots")
    assert err.value.status == 503 and len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415])
def test_client_errors_are_not_retried(server, status):
    server.answers = [(status, {})]
    with client(server) as c, pytest.raises(PersonaError) as err:
        c.payment_preference("c1", "card")
    assert err.value.status == status and err.value.body == {"error": f"scripted {status}"}
    assert len(server.requests) == 1


def test_connection_errors_are_retried_then_raised():
    async def run():
        c = AsyncPersonaClient(f"http://127.0.0.1:{free_port()}", "k", retries=2,
                               backoff_s=0.01)
        async with c:
            await c.product_view("c1", "p1")
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(run())


def test_helpers_build_valid_events(server):
    items = [{"product_id": "p1", "quantity": 2, "price": 5.0}]
    with client(server) as c:
        c.product_view("c1", "p1", category="shoes", price=5.0)
        c.search("c1", "boots", results_count=3)
        c.cart_add("c1", "p1", 2, price=5.0)
        c.cart_remove("c1", "p1")
        c.checkout_start("c1", cart_value=10.0, payment_method="card")
        c.payment_preference("c1", "card")
        c.purchase("c1", "o1", items, total=10.0, currency="EUR", session_id="s1")
    sent = [body[0] for _, body in server.requests]
    assert [e["type"] for e in sent] == list(SHOP_TYPES)
    for e in sent:
        assert validate_dict(e)["event_id"] == e["event_id"]
    assert "category" not in sent[3] and sent[6]["session_id"] == "s1"


def test_send_returns_one_token_for_all_its_requests(server):
    with client(server, max_events=2) as c:
        result = c.send([{"type": "search", "customer_id": "c1", "query": str(i)}
                         for i in range(5)])
    assert len(server.requests) == 3
    assert decode(result.token) == {1: 1, 0: 2} | {1: 3}  # the latest per partition


def test_reads_pass_after_and_retry_503_until_applied(server):
    server.reads = [(503, {"Retry-After": "0"}, {"error": "not yet applied"}),
                    (429, {}, {"error": "slow down"}), (200, {}, {"customer_id": "c/1"})]
    with client(server) as c:
        got = c.profile("c/1", after="v1.TOKEN", wait_ms=2000)
    assert got == {"customer_id": "c/1"} and len(server.queries) == 3
    url = server.queries[-1]
    assert url.raw_path == "/v1/customers/c%2F1/profile"
    assert dict(url.query) == {"after": "v1.TOKEN", "wait_ms": "2000"}


def test_reads_of_unknown_customers_are_none_and_400s_raise(server):
    server.reads = [(404, {}, {"error": "not found"}),
                    (400, {}, {"error": "invalid request", "fields": {"after": ["bad"]}})]
    with client(server) as c:
        assert c.activity("nobody") is None
        with pytest.raises(PersonaError) as err:
            c.recommendations("c1", limit=5, after="garbage")
    assert err.value.status == 400 and err.value.body["fields"] == {"after": ["bad"]}
    assert dict(server.queries[-1].query) == {"after": "garbage", "limit": "5"}
    assert [q.path.rsplit("/", 1)[1] for q in server.queries] == ["activity", "recommendations"]
