"""``GET /metrics`` (scope ``metrics``; ``admin`` implies it): this worker's Prometheus metrics.

The definitions are in ``app.observability.metrics`` (own registry, not prometheus-client's global one).
This module binds what is read at scrape time to the running worker and counts HTTP
requests and rebalances:

- HTTP: ``observe``, called once per request by the views' dispatch (``app.kafka.webview``;
  on untested Faust versions by the Faust sensor ``PersonaSensor`` around each view) ->
  requests by route *template* (the matched route's canonical path, never the raw path),
  method, status and routing (``local``, ``forwarded`` to the owner, ``for_peer``: answered
  for a forwarding peer), and latency. Only views are counted, so unmatched paths
  (aiohttp's own 404) are not.
- rebalances: the sensor's ``on_rebalance_start``.
- lag, readiness, recovery: read from the app when scraped (``lag_samples``).

With ``PERSONA_METRICS=off`` (``app.observability.metrics_switch``) neither the sensor nor
``observe`` is added (no request is timed) and ``GET /metrics`` answers 404 naming the setting, after the
key check (401/403 first, as for any route).
"""
from __future__ import annotations

import logging
import time

from faust import Sensor
from faust.exceptions import ConsumerNotStarted
from prometheus_client import generate_latest

from app.kafka import webview
from app.kafka.internals import committed_offset
from app.kafka.webview import View
from app.main import app
from app.observability import metrics, metrics_switch
from app.topics import events_topic, webhook_deliveries
from web.auth import require
from web.routing import ROUTING, worker_ready

log = logging.getLogger(__name__)
#: The classic text format every Prometheus version reads (all names here are legacy-valid,
#: so the body is the same as prometheus-client's newer 1.0.0 format).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Consumed topics whose lag is reported (changelog partitions are restored, not consumed).
LAG_TOPICS = frozenset(t.get_topic_name() for t in (events_topic, webhook_deliveries))


def lag_samples(consumer, committed, topics=LAG_TOPICS) -> list:
    """``[(topic, partition, high watermark - committed)]`` per assigned partition of
    ``topics`` whose high watermark is known (``Consumer.highwater``: from fetch answers,
    no broker call); ``committed(tp)``: the committed offset, None (none yet) counts as 0."""
    out = []
    for tp in sorted(consumer.assignment()):
        if tp.topic not in topics:
            continue
        high = consumer.highwater(tp)
        if high is None:
            continue
        out.append((tp.topic, tp.partition, max(0, high - (committed(tp) or 0))))
    return out


def worker_state() -> dict:
    try:
        lag = lag_samples(app.consumer, lambda tp: committed_offset(app, tp))
    except ConsumerNotStarted:
        lag = []
    except Exception:  # e.g. aiokafka's assignment changing under a rebalance: no 500
        log.debug("consumer lag not available now", exc_info=True)
        lag = []
    return {"ready": worker_ready(),
            "recovery_remaining": app.tables.recovery.active_remaining_total(),
            "lag": lag}


def observe(request, response, seconds: float) -> None:
    """One request into the HTTP metrics (a handler that raised: 500)."""
    status = response.status if response is not None else 500
    metrics.http_request(metrics.route_template(request), request.method, status,
                         request.get(ROUTING, "local"), seconds)


class PersonaSensor(Sensor):
    """HTTP requests and rebalances into ``app.observability.metrics``."""

    def on_web_request_start(self, app, request, *, view=None) -> float:
        return time.perf_counter()

    def on_web_request_end(self, app, request, response, state, *, view=None) -> None:
        observe(request, response, time.perf_counter() - state)

    def on_rebalance_start(self, app) -> dict:
        metrics.REBALANCES.inc()
        return {}


metrics.WORKER.read = worker_state
if metrics_switch.enabled():
    app.sensors.add(PersonaSensor())  # Faust's own dispatch (app.kafka.webview off), rebalances
    webview.OBSERVERS.append(observe)  # Persona's views (app.kafka.webview)


@app.page("/metrics")
class Metrics(View):
    @require("metrics")
    async def get(self, request):
        if not metrics_switch.enabled():
            return self.json(metrics_switch.OFF, status=404)
        return self.bytes(generate_latest(metrics.REGISTRY),
                          headers={"Content-Type": CONTENT_TYPE})
