"""A real HTTP webhook receiver for end-to-end tests: an aiohttp server on its own event
loop in a thread of the test process, recording every request (``calls``) and answering
what the test's ``rule`` says. Used by tests/e2e/test_webhooks.py and test_erase_webhooks.py.
"""
from __future__ import annotations

import asyncio
import threading
import time

import orjson
from aiohttp import web

from app.harness.ready import free_port


class Receiver:
    """aiohttp server on its own loop in a thread; ``rule(call) -> status | (status, delay)``."""

    def __init__(self):
        self.port = free_port()
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.rule = lambda call: 200
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> "Receiver":
        self.thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _handle(self, request):
        body = await request.read()
        data = orjson.loads(body)
        call = {"sub": request.match_info["name"], "headers": dict(request.headers), "body": body,
                "id": request.headers.get("webhook-id"), "kind": data["type"],
                "customer": data["data"]["customer_id"], "at": time.time()}
        with self.lock:
            call["n"] = sum(1 for c in self.calls if c["id"] == call["id"] and c["sub"] == call["sub"])
            answer = self.rule(call)
            status, delay = answer if isinstance(answer, tuple) else (answer, 0)
            call["status"] = status
            self.calls.append(call)
        await asyncio.sleep(delay)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(status=status, headers=headers)

    def of(self, customer: str, sub: str = "main") -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["customer"] == customer and c["sub"] == sub]
