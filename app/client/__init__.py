"""A small Python client for ``POST /v1/events`` and the per-customer reads.

    async with AsyncPersonaClient("http://127.0.0.1:6066", "ingest-key") as client:
        await client.product_view("customer-1", "p1", category="shoes", price=59.5)
        sent = await client.send([event, event, ...])
        profile = await client.profile("customer-1", after=sent.token)  # reflects them

    with PersonaClient("http://127.0.0.1:6066", "ingest-key") as client:   # blocking
        client.purchase("customer-1", "order-1", [{"product_id": "p1", "quantity": 1,
                        "price": 59.5}], total=59.5, currency="EUR")

``send`` splits events into requests of at most ``max_events`` events and
``max_bytes`` bytes (the server's PERSONA_INGEST_MAX_* defaults) and gives every event
an ``event_id`` and ``ts`` first, so retries are deduplicated by the server. A 503, 429,
502, 504, a timeout or a connection error is retried with exponential backoff and
jitter (honouring Retry-After); any other error (400, 401, 403, 413, 415) raises
``PersonaError`` at once: sending the same request again cannot succeed.

``SendResult.token`` is the read-your-writes token of everything one ``send`` wrote (the
tokens of its requests merged, ``app.consistency.positions``: the one module of the server it uses,
pure). ``profile``, ``activity`` and ``recommendations`` return the answer as a dict (None
for an unknown customer); with ``after=token`` the answer reflects those events: the owner
answers 503 until it has applied them, retried by the same rules as ``send``.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional
from urllib.parse import quote

import aiohttp
import orjson

from app.consistency.positions import merge

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class PersonaError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


@dataclass
class SendResult:
    accepted: int = 0
    event_ids: list = field(default_factory=list)
    token: Optional[str] = None  # pass as ``after=`` to a read to see these events


def event(type: str, customer_id: str, session_id: Optional[str] = None, ts: Any = None,
          **fields: Any) -> dict:
    """One event envelope; ``None`` fields are left out."""
    out = {"type": type, "customer_id": customer_id, "session_id": session_id, "ts": ts,
           **fields}
    return {k: v for k, v in out.items() if v is not None}


def batches(events: list, max_events: int, max_bytes: int) -> Iterable[list[bytes]]:
    """Serialized events grouped under both limits (a JSON array adds 1 byte per event)."""
    batch, size = [], 2
    for ev in events:
        raw = orjson.dumps(ev)
        if batch and (len(batch) >= max_events or size + len(raw) + 1 > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(raw)
        size += len(raw) + 1
    if batch:
        yield batch


class _Helpers:
    """Typed helpers: each sends one event (``send`` is async or blocking)."""

    def send(self, events):  # pragma: no cover - overridden
        raise NotImplementedError

    def product_view(self, customer_id: str, product_id: str, category: str | None = None,
                     price: float | None = None, **kw):
        return self.send([event("product_view", customer_id, product_id=product_id,
                                category=category, price=price, **kw)])

    def search(self, customer_id: str, query: str, results_count: int | None = None, **kw):
        return self.send([event("search", customer_id, query=query,
                                results_count=results_count, **kw)])

    def cart_add(self, customer_id: str, product_id: str, quantity: int = 1,
                 price: float | None = None, category: str | None = None, **kw):
        return self.send([event("cart_add", customer_id, product_id=product_id,
                                quantity=quantity, price=price, category=category, **kw)])

    def cart_remove(self, customer_id: str, product_id: str, quantity: int = 1,
                    price: float | None = None, category: str | None = None, **kw):
        return self.send([event("cart_remove", customer_id, product_id=product_id,
                                quantity=quantity, price=price, category=category, **kw)])

    def checkout_start(self, customer_id: str, cart_value: float | None = None,
                       payment_method: str | None = None, **kw):
        return self.send([event("checkout_start", customer_id, cart_value=cart_value,
                                payment_method=payment_method, **kw)])

    def payment_preference(self, customer_id: str, method: str, **kw):
        return self.send([event("payment_preference", customer_id, method=method, **kw)])

    def purchase(self, customer_id: str, order_id: str, items: list[dict], total: float,
                 currency: str, payment_method: str | None = None, **kw):
        return self.send([event("purchase", customer_id, order_id=order_id, items=items,
                                total=total, currency=currency, payment_method=payment_method,
                                **kw)])


class AsyncPersonaClient(_Helpers):
    def __init__(self, base_url: str, api_key: str, *, max_events: int = 500,
                 max_bytes: int = 1024 * 1024, retries: int = 5, backoff_s: float = 0.2,
                 max_backoff_s: float = 10.0, timeout_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/v1/events"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.max_events, self.max_bytes = max_events, max_bytes
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "AsyncPersonaClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, events: Iterable[dict]) -> SendResult:
        now = int(time.time() * 1000)
        prepared = [{"event_id": str(uuid.uuid4()), "ts": now, **ev} for ev in events]
        result = SendResult()
        for batch in batches(prepared, self.max_events, self.max_bytes):
            body = await self._call("POST", self.url, data=b"[" + b",".join(batch) + b"]")
            result.accepted += body["accepted"]
            result.event_ids.extend(body["event_ids"])
            result.token = merge(result.token, body.get("token"))
        return result

    async def profile(self, customer_id: str, *, after: str | None = None,
                      wait_ms: int | None = None) -> Optional[dict]:
        return await self._read(customer_id, "profile", after, wait_ms)

    async def activity(self, customer_id: str, *, after: str | None = None,
                       wait_ms: int | None = None) -> Optional[dict]:
        return await self._read(customer_id, "activity", after, wait_ms)

    async def recommendations(self, customer_id: str, *, limit: int | None = None,
                              after: str | None = None,
                              wait_ms: int | None = None) -> Optional[dict]:
        return await self._read(customer_id, "recommendations", after, wait_ms, limit=limit)

    async def _read(self, customer_id: str, what: str, after, wait_ms, **params):
        query = {k: str(v) for k, v in (("after", after), ("wait_ms", wait_ms), *params.items())
                 if v is not None}
        url = f"{self.base_url}/v1/customers/{quote(customer_id, safe='')}/{what}"
        return await self._call("GET", url, params=query, ok=200)

    async def _call(self, method: str, url: str, *, data: bytes | None = None,
                    params: dict | None = None, ok: int = 202) -> Any:
        """The decoded answer of status ``ok`` (None for a read's 404), with the retries."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                async with self._session.request(method, url, data=data, params=params,
                                                 headers=self.headers) as r:
                    text = await r.read()
                    if r.status == ok:
                        return orjson.loads(text)
                    if r.status == 404 and method == "GET":
                        return None
                    try:
                        answer = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        answer = text.decode("utf-8", "replace")
                    if r.status not in RETRY_STATUSES or attempt == self.retries:
                        raise PersonaError(r.status, answer)
                    retry_after = r.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if attempt == self.retries:
                    raise
            await asyncio.sleep(self._delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        wait = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        wait = wait / 2 + random.random() * wait / 2
        if retry_after and retry_after.isdigit():
            wait = max(wait, min(float(retry_after), self.max_backoff_s))
        return wait


class PersonaClient(_Helpers):
    """Blocking wrapper around :class:`AsyncPersonaClient` (its own event loop)."""

    def __init__(self, base_url: str, api_key: str, **options: Any):
        self._loop = asyncio.new_event_loop()
        self._client = AsyncPersonaClient(base_url, api_key, **options)

    def __enter__(self) -> "PersonaClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, events: Iterable[dict]) -> SendResult:
        return self._loop.run_until_complete(self._client.send(list(events)))

    def profile(self, customer_id: str, **kw: Any) -> Optional[dict]:
        return self._loop.run_until_complete(self._client.profile(customer_id, **kw))

    def activity(self, customer_id: str, **kw: Any) -> Optional[dict]:
        return self._loop.run_until_complete(self._client.activity(customer_id, **kw))

    def recommendations(self, customer_id: str, **kw: Any) -> Optional[dict]:
        return self._loop.run_until_complete(self._client.recommendations(customer_id, **kw))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()
