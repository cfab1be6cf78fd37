"""Persona's views: Faust's ``View`` with a leaner per-request dispatch.

Faust's ``View.dispatch`` runs three ``typing.cast(Callable[..., Awaitable[...]], ...)``
subscripts per request and calls every sensor around it: its own in-process ``Monitor``
(an ``HTTPStatus`` enum and per-status counters nobody reads here: Persona exposes its
own metrics) and Persona's request sensor. Per lookup that was about a tenth of the
worker's time (py-spy of idle lookups). ``View.dispatch`` here does the same work without
those: the handler by method, the URL's match info as keyword arguments, a ``WebError``
turned into its error response, and the request counted once, in Persona's HTTP metrics
(``OBSERVERS``, which ``web.metrics`` fills when metrics are on).

A speed-only path (``app.kafka.install``): on untested Faust versions ``ENABLED`` stays
off and Faust's own dispatch runs (the request then reaches Persona's metrics through its
sensor, ``web.metrics.PersonaSensor``). The replaced source is pinned by hash
(``tests/agents/test_webview.py``).
"""
from __future__ import annotations

import time

from faust.web import View as FaustView
from faust.web.exceptions import WebError

#: Set by ``app.kafka.install`` on the tested Faust version.
ENABLED = False
#: ``observe(request, response or None, seconds)`` per request dispatched here.
OBSERVERS: list = []
#: The method this module replaces, kept for the pin and the fallback.
ORIGINAL_DISPATCH = FaustView.dispatch


class View(FaustView):
    async def dispatch(self, request):
        if not ENABLED:
            return await ORIGINAL_DISPATCH(self, request)
        handler = self.methods[request.method.lower()]
        started = time.perf_counter()
        response = None
        try:
            response = await handler(request, **(request.match_info or {}))
        except WebError as exc:
            response = await self.on_request_error(request, exc)
        finally:
            seconds = time.perf_counter() - started
            for observe in OBSERVERS:
                observe(request, response, seconds)
        return response


class NoCors:
    """Stands for Faust's ``aiohttp_cors`` config when no route has CORS options. Faust's
    aiohttp driver sets that config up on start whether or not a route uses it, which
    hangs a response-prepare signal on every answer (~4 % of an idle lookup's CPU, py-spy).
    Persona answers CORS itself, for the ingest routes only (``web.ingest``)."""

    def add(self, *args, **kwargs):
        raise RuntimeError("a route asked Faust for CORS options: Persona answers CORS itself")


def install(app) -> None:
    global ENABLED
    ENABLED = True
    if not app.conf.web_cors_options:
        app.web._cors = NoCors()  # Faust's driver: set up only while this is None
