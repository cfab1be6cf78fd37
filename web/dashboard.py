"""``GET /dashboard``: the live dashboard page, and ``GET /v1/ops`` (scope ``metrics``), the
operational figures it charts, as JSON.

The page (``web/static/dashboard.html``, no build step) draws with uPlot, vendored with its
MIT licence in ``web/static/vendor/uplot/`` and served from here. The page, the library
and the licence are served without a key: they hold no data. The page asks for a key,
keeps it in the tab's ``sessionStorage`` (never in a URL) and sends it as a bearer to
``/v1/ops`` and ``/v1/kpis``: it needs the scopes ``metrics`` and ``read`` (or ``admin``).

``/v1/ops`` reads the same registry as ``/metrics`` (``app.observability.metrics``, prometheus-client's
public ``collect``), so both always agree: events by outcome, webhook requests by outcome,
consumer lag of ``events`` and the outbox backlog (lag of ``webhook-deliveries``), and the
cumulative buckets of the ``readable`` freshness histogram (the page takes quantiles of the
change between two polls). The worker asked adds the figures of every other worker it
knows from the partition assignment (asked with ``X-Persona-Forwarded``, the same HTTP
path as forwarded reads) and says how many answered: unlike ``/v1/kpis`` these are
monitoring figures, so a worker that does not answer is reported, not an error.
With ``PERSONA_METRICS=off`` ``/v1/ops`` answers 404 naming the setting (after the key
check); the page then says so in its operations part and still charts the KPIs.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson
from faust.exceptions import ConsumerNotStarted
from yarl import URL

from app.kafka.webview import View
from app.main import app
from app.observability import metrics, metrics_switch
from app.topics import events_topic
from web.auth import require
from web.kpis import owners
from web.routing import FORWARD_TIMEOUT_S, FORWARDED, PEER_SSL, _is_self

STATIC = Path(__file__).with_name("static")
UPLOT = STATIC / "vendor" / "uplot"
FILES = {  # path -> (bytes, content type)
    "/dashboard": ((STATIC / "dashboard.html").read_bytes(), "text/html"),
    "/dashboard/uPlot.iife.min.js": ((UPLOT / "uPlot.iife.min.js").read_bytes(),
                                     "application/javascript"),
    "/dashboard/uPlot.min.css": ((UPLOT / "uPlot.min.css").read_bytes(), "text/css"),
    "/dashboard/uPlot.LICENSE": ((UPLOT / "LICENSE").read_bytes(), "text/plain"),
}
EVENTS_TOPIC = events_topic.get_topic_name()


def figures(families) -> dict:
    """This worker's figures from its metric families (``REGISTRY.collect()``)."""
    out = {"workers": 1, "events": {}, "webhooks": {}, "lag": 0, "outbox_backlog": 0,
           "freshness": {"bounds": [], "counts": []}}
    fresh = out["freshness"]
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "persona_events_total":
                out["events"][labels["outcome"]] = out["events"].get(labels["outcome"], 0) + value
            elif name == "persona_webhooks_total":
                out["webhooks"][labels["outcome"]] = (out["webhooks"].get(labels["outcome"], 0)
                                                      + value)
            elif name == "persona_consumer_lag":
                field = "lag" if labels["topic"] == EVENTS_TOPIC else "outbox_backlog"
                out[field] += value
            elif (name == "persona_event_freshness_seconds_bucket"
                  and labels.get("stage") == "readable"):
                bound = float(labels["le"])  # +Inf as null: JSON has no infinity
                fresh["bounds"].append(None if bound == float("inf") else bound)
                fresh["counts"].append(value)
    return out


def add(total: dict, part: dict) -> None:
    """Sum ``part`` (another worker's figures) into ``total``."""
    total["workers"] += part["workers"]
    for group in ("events", "webhooks"):
        for k, v in part[group].items():
            total[group][k] = total[group].get(k, 0) + v
    total["lag"] += part["lag"]
    total["outbox_backlog"] += part["outbox_backlog"]
    if not total["freshness"]["counts"]:
        total["freshness"] = {"bounds": list(part["freshness"]["bounds"]),
                              "counts": list(part["freshness"]["counts"])}
    elif part["freshness"]["bounds"] == total["freshness"]["bounds"]:
        counts = total["freshness"]["counts"]
        for i, v in enumerate(part["freshness"]["counts"]):
            counts[i] += v


async def peer_figures(request, url: str) -> dict:
    headers = {FORWARDED: "1", "Authorization": request.headers.get("Authorization", "")}
    async with app.http_client.get(URL(url).with_path("/v1/ops"), headers=headers, ssl=PEER_SSL,
                                   timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as r:
        r.raise_for_status()
        return orjson.loads(await r.read())


@app.page("/v1/ops")
class Ops(View):
    @require("metrics")
    async def get(self, request):
        if not metrics_switch.enabled():
            return self.json(metrics_switch.OFF, status=404)
        total = figures(metrics.REGISTRY.collect())
        if not request.headers.get(FORWARDED):
            try:
                peers = [url for url in (owners("1m") or {}) if not _is_self(URL(url))]
            except ConsumerNotStarted:
                peers = []
            answers = await asyncio.gather(*(peer_figures(request, u) for u in peers),
                                           return_exceptions=True)
            for part in answers:
                if not isinstance(part, BaseException):
                    add(total, part)
            total["unreachable"] = sum(isinstance(a, BaseException) for a in answers)
        total["time"] = int(time.time() * 1000)
        return self.bytes(orjson.dumps(total), content_type="application/json")


def _static(path: str):
    body, content_type = FILES[path]

    class Static(View):
        async def get(self, request):
            return self.bytes(body, content_type=content_type,
                              headers={"Cache-Control": "no-cache"})

    Static.__name__ = Static.__qualname__ = "Static" + path.replace("/", "_").replace(".", "_")
    return Static


for _path in FILES:
    app.page(_path)(_static(_path))
