"""A steady event stream for the end-to-end scenarios, and what its reads may answer:
``synthetic`` customers' events, ``truths`` (every profile a customer passes through: a
read must answer one of them; and the final one, the pure fold), and ``Producer``, a thread
that sends them at a steady rate and retries like a real producer (same event_id)."""
from __future__ import annotations

import asyncio
import random
import threading
import time

import orjson
from aiokafka import AIOKafkaProducer

from tests.support.expected import prefix_views

KINDS = ["product_view"] * 6 + ["cart_add", "cart_add", "cart_remove", "search",
                                "payment_preference", "purchase"]


def synthetic(n_customers: int, per_customer: int, seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    out, t0 = [], 1_700_000_000_000
    for c in range(n_customers):
        t = t0 + rnd.randrange(0, 3_600_000)
        for i in range(per_customer):
            t += rnd.randrange(1_000, 900_000)
            kind = rnd.choice(KINDS)
            e = {"event_id": f"chaos-{c}-{i}", "type": kind, "customer_id": f"chaos-{c}", "ts": t}
            pid = f"p{rnd.randrange(40)}"
            if kind == "product_view":
                e.update(product_id=pid, category=f"cat{rnd.randrange(6)}", price=9.5)
            elif kind in ("cart_add", "cart_remove"):
                e.update(product_id=pid, quantity=rnd.randrange(1, 3), price=9.5)
            elif kind == "search":
                e.update(query=f"q{rnd.randrange(20)}")
            elif kind == "payment_preference":
                e.update(method=rnd.choice(["card", "paypal", "invoice"]))
            else:
                e.update(order_id=f"o-{c}-{i}", total=19.0, currency="EUR",
                         items=[{"product_id": pid, "quantity": 2, "price": 9.5}])
            out.append(e)
    return out


def truths(events: list[dict]) -> tuple[dict, dict]:
    """Per customer: every profile view after a prefix of its events, and the final one."""
    views = prefix_views(events)
    return {cid: set(v) for cid, v in views.items()}, {cid: orjson.loads(v[-1])
                                                        for cid, v in views.items()}


class Producer(threading.Thread):
    """Sends ``events`` to ``events`` at ``rate`` per second, keyed by customer, each one
    acknowledged before the next (``acked``: when each was, monotonic)."""

    def __init__(self, bootstrap: str, events: list[dict], rate: float):
        super().__init__(daemon=True)
        self.bootstrap, self.events, self.rate, self.sent, self.error = (
            bootstrap, events, rate, 0, None)
        self.retries = 0
        self.acked: list[float] = []

    def run(self):
        try:
            asyncio.run(self._run())
        except Exception as exc:  # surfaced by the test
            self.error = exc

    async def _run(self):
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        start = time.monotonic()
        try:
            for e in self.events:
                await self._send(producer, e)
                self.acked.append(time.monotonic())
                self.sent += 1
                ahead = self.sent / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()

    async def _send(self, producer, e, attempts: int = 30):
        """Retry like a real producer would: a resend carries the same event_id."""
        for attempt in range(attempts):
            try:
                await producer.send_and_wait("events", orjson.dumps(e),
                                             key=e["customer_id"].encode())
                return
            except Exception as exc:  # broker busy during a rebalance storm
                self.retries += 1
                if attempt == attempts - 1:
                    raise
                print(f"chaos producer retry after {exc!r}")
                await asyncio.sleep(0.5)
