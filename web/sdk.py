"""The browser SDK (``GET /sdk/persona.js``) and the demo shop (``GET /demo/shop``); no auth.

The demo page sends its events with ``PERSONA_DEMO_KEY``, which is written into the
page: give it an ingest-only key. Unset, the page only says that the demo is disabled.
"""
from __future__ import annotations

from pathlib import Path

import orjson
from faust.web import View

from app.main import app
from app.settings import settings

STATIC = Path(__file__).with_name("static")
SDK = (STATIC / "persona.js").read_bytes()
SHOP = (STATIC / "shop.html").read_text()
DISABLED = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Persona demo shop</title></head><body><h1>Persona demo shop</h1>
<p id="message">The demo is disabled: set PERSONA_DEMO_KEY to an ingest-only API key.</p>
</body></html>"""


def shop_page(demo_key: str) -> str:
    # JSON inside a <script>: escape "<" so no value can close the script element.
    config = orjson.dumps({"key": demo_key}).decode().replace("<", "\\u003c")
    return SHOP.replace("__PERSONA_CONFIG__", config)


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
        return self.html(shop_page(settings.demo_key), headers={"Cache-Control": "no-store"})
