"""app.client against a scripted in-process HTTP server: batching, retries, helpers."""
from __future__ import annotations

import asyncio
import threading

import aiohttp
import orjson
import pytest
from aiohttp import web

from app.client import AsyncPersonaClient, PersonaClient, PersonaError, batches
from app.local import free_port
from app.rules.events import SHOP_TYPES, validate_dict


class Scripted:
    """Answers POST /v1/events with the queued (status, headers) answers, then 202."""

    def __init__(self):
        self.answers, self.requests = [], []
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
            return web.json_response({"accepted": len(events),
                                      "event_ids": [e["event_id"] for e in events]}, status=202)
        return web.json_response({"error": f"scripted {status}"}, status=status, headers=headers)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/events", self.handle)
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
