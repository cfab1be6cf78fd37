"""Pins app.kafka.webview: Persona's views dispatch without Faust's per-request typing casts
and sensors, and still count each request once in Persona's HTTP metrics."""
from __future__ import annotations

import asyncio
import hashlib
import inspect

import pytest
from faust.web import View as FaustView
from faust.web.exceptions import NotFound

from app.kafka import webview
from app.main import app
from tests.unit.test_openapi import registered_routes

#: sha256 of inspect.getsource(faust.web.View.dispatch) in faust-streaming 0.15.3.
DISPATCH_SHA256 = "24747b3470d5dd7645a6aaab12fe5bb5bdfbd7ddf7c622fd109dc60c00c12ac6"


def test_the_replaced_dispatch_is_the_installed_faust_one():
    source = inspect.getsource(FaustView.dispatch)
    assert hashlib.sha256(source.encode()).hexdigest() == DISPATCH_SHA256
    assert webview.ORIGINAL_DISPATCH is FaustView.dispatch
    assert "sensors.on_web_request_end" in source  # what the lean dispatch does without
    assert webview.ENABLED  # app.kafka.install ran on the tested versions


def test_every_registered_view_is_a_persona_view():
    registered_routes()  # imports every web module, as autodiscovery does
    views = app.web.views
    assert len(views) >= 15
    assert {path: type(v).__name__ for path, v in views.items()
            if not isinstance(v, webview.View)} == {}


class Request(dict):
    method = "GET"

    def __init__(self, **match):
        super().__init__()
        self.match_info = match


class Probe(webview.View):
    async def get(self, request, customer_id):
        if customer_id == "missing":
            raise NotFound("no such customer")
        if customer_id == "bug":
            raise RuntimeError("a bug")
        return self.json({"customer_id": customer_id})


@pytest.fixture
def observed(monkeypatch):
    seen = []
    monkeypatch.setattr(webview, "OBSERVERS", [lambda req, resp, s: seen.append(
        (req.match_info["customer_id"], None if resp is None else resp.status, s >= 0))])
    return seen


def test_the_lean_dispatch_passes_match_info_and_counts_each_request_once(observed):
    view = Probe(app, app.web)
    ok = asyncio.run(view.dispatch(Request(customer_id="c1")))
    missing = asyncio.run(view.dispatch(Request(customer_id="missing")))
    with pytest.raises(RuntimeError):
        asyncio.run(view.dispatch(Request(customer_id="bug")))
    assert (ok.status, ok.body) == (200, b'{"customer_id":"c1"}')
    assert missing.status == 404  # a WebError becomes its error answer, as in Faust
    assert observed == [("c1", 200, True), ("missing", 404, True), ("bug", None, True)]


def test_off_it_is_fausts_dispatch_with_its_sensors(observed, monkeypatch):
    calls = []
    monkeypatch.setattr(webview, "ENABLED", False)
    monkeypatch.setattr(app.sensors, "on_web_request_start",
                        lambda *a, **kw: calls.append("start") or {})
    monkeypatch.setattr(app.sensors, "on_web_request_end",
                        lambda *a, **kw: calls.append("end"))
    response = asyncio.run(Probe(app, app.web).dispatch(Request(customer_id="c2")))
    assert response.status == 200 and calls == ["start", "end"] and observed == []


def test_no_cors_signal_hangs_on_every_answer():
    """Faust's driver sets ``aiohttp_cors`` up on start only while ``_cors`` is None; with
    the placeholder in, starting the web app adds no response-prepare handler."""
    from faust.web.drivers.aiohttp import Web

    assert "if self._cors is None:" in inspect.getsource(Web.cors.fget)
    assert not app.conf.web_cors_options  # Persona's routes ask Faust for no CORS
    assert isinstance(app.web._cors, webview.NoCors)
    fresh = type(app.web)(app)  # Faust's own driver, as it is without the placeholder
    for web in (app.web, fresh):
        assert web.cors  # what Faust's on_start does before the server starts
    assert len(fresh.web_app.on_response_prepare) == 1  # aiohttp_cors' handler
    assert len(app.web.web_app.on_response_prepare) == 0
    with pytest.raises(RuntimeError, match="Persona answers CORS itself"):
        app.web.cors.add(None, {})
