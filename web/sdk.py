"""The browser SDK (``GET /sdk/persona.js``) and the demo shop (``GET /demo/shop``,
``POST /demo/order``); no auth.

The demo page sends its events with ``PERSONA_DEMO_KEY``, which is written into the
page: give it a publishable key. Unset, the page only says that the demo is disabled.

The worker also plays the demo shop's backend, as a real shop's server would:
- **sign-in**: ``/demo/shop?customer=demo-...`` signs the visitor in as that demo customer and
  writes the identity hash (``app.auth.identity.identity_hash``, when PERSONA_IDENTITY_SECRET is
  set) into the page. Only ids starting with ``DEMO_PREFIX`` are signed, so the demo is a
  signing oracle for demo customers only; other visitors stay anonymous (``anon-``).
- **orders**: a publishable key may not send ``purchase``, so the page posts its order to
  ``POST /demo/order`` (the same identity hash in ``X-Persona-Identity-Hash``), which checks
  the hash and produces the purchase like ``POST /v1/events`` with a server key would,
  but marked as a browser's (``app.topics.SOURCE_HEADER``: it is unauthenticated), rate
  limited per client address (``DEMO_ORDER_RATE``), and refused while webhooks are
  configured (no demo order can make a signed webhook go out).
Never enable the demo on a production deployment.
"""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import orjson

from app.auth.identity import ANON_PREFIX, HASH_HEADER, hash_ok, identity_hash
from app.auth.ratelimit import Buckets, Rate, client_address
from app.kafka.webview import View
from app.main import app
from app.rules.events import ID_RE
from app.settings import settings
from web import ratelimit
from web.ingest import Reject, produce, read_capped, validated

STATIC = Path(__file__).with_name("static")
SDK = (STATIC / "persona.js").read_bytes()
SHOP = (STATIC / "shop.html").read_text()
DEMO_PREFIX = "demo-"
DISABLED = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Persona demo shop</title></head><body><h1>Persona demo shop</h1>
<p id="message">The demo is disabled: set PERSONA_DEMO_KEY to a publishable API key.</p>
</body></html>"""


def demo_customer(cid: str | None) -> str | None:
    """``cid`` if the demo may sign it in, else None."""
    if cid and cid.startswith(DEMO_PREFIX) and re.fullmatch(ID_RE, cid):
        return cid
    return None


def shop_page(demo_key: str, customer: str | None = None, secret: bytes = b"") -> str:
    signed = identity_hash(secret, customer) if customer and secret else None
    config = {"key": demo_key, "customer": customer, "hash": signed, "demo_prefix": DEMO_PREFIX}
    # JSON inside a <script>: escape "<" so no value can close the script element.
    return SHOP.replace("__PERSONA_CONFIG__", orjson.dumps(config).decode().replace("<", "\\u003c"))


def order_refusal(event, presented: str | None, secret: bytes) -> dict | None:
    """Why the demo backend refuses an order, or None."""
    if not isinstance(event, dict) or event.get("type") != "purchase":
        return {"error": "the demo backend takes one purchase event"}
    cid = event.get("customer_id")
    if not isinstance(cid, str) or not (demo_customer(cid) or cid.startswith(ANON_PREFIX)):
        return {"error": f"the demo backend takes orders of {DEMO_PREFIX}* and "
                         f"{ANON_PREFIX}* customers only"}
    if secret and demo_customer(cid) and not hash_ok(secret, cid, presented):
        return {"error": "identity not verified"}
    return None


@app.page("/sdk/persona.js")
class PersonaJs(View):
    async def get(self, request):
        return self.bytes(SDK, content_type="application/javascript",
                          headers={"Cache-Control": "public, max-age=300"})


@app.page("/demo/shop")
class DemoShop(View):
    async def get(self, request):
        if not settings.demo_key:
            return self.html(DISABLED, status=404)
        page = shop_page(settings.demo_key, demo_customer(request.query.get("customer")),
                         settings.identity_secret)
        return self.html(page, headers={"Cache-Control": "no-store"})


#: Demo orders per client address: a few per minute is what a person clicking "buy" does.
DEMO_ORDER_RATE = Rate(per_s=0.2, burst=5)
_demo_orders = Buckets(DEMO_ORDER_RATE)


@app.page("/demo/order")
class DemoOrder(View):
    async def post(self, request):
        if not settings.demo_key:
            return self.json({"error": "demo disabled"}, status=404)
        if settings.webhooks:
            return self.json({"error": "the demo backend takes no orders while webhooks are "
                                       "configured (PERSONA_WEBHOOKS)"}, status=403)
        address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                                 settings.rates.trusted_hops)
        wait = _demo_orders.take(address, time.monotonic())
        if wait > 0:
            body, headers = ratelimit.refusal(request, "demo", wait)
            body["detail"] = f"over the demo's order rate for this address; retry after {headers['Retry-After']} s"
            return self.json(body, status=429, headers=headers)
        try:
            event = orjson.loads(await read_capped(request, 64 * 1024))
        except orjson.JSONDecodeError:
            event = None
        except Reject as exc:
            return self.json(exc.body, status=exc.status)
        refusal = order_refusal(event, request.headers.get(HASH_HEADER), settings.identity_secret)
        if refusal is not None:
            return self.json(refusal, status=403 if "identity" in refusal["error"] else 400)
        try:
            records = validated([event], int(time.time() * 1000))
            await asyncio.wait_for(produce(records, browser=True), settings.ingest_timeout_s)
        except Reject as exc:
            return self.json(exc.body, status=exc.status)
        except Exception:
            return self.json({"error": "unavailable"}, status=503, headers={"Retry-After": "2"})
        return self.json({"accepted": 1, "event_ids": [records[0][2]]}, status=202)
