"""Every Prometheus metric of a worker, on this process's own registry (``REGISTRY``).

Definitions only: nothing here reads settings, the app or Faust, so importing it is cheap
and side-effect free apart from creating the metrics. ``web/metrics.py`` serves
``GET /metrics`` from ``REGISTRY`` and binds ``WORKER`` (lag, readiness) to the app; the
agents count through the helpers below. ``REGISTRY`` is not prometheus-client's global
default registry: it holds exactly Persona's metrics plus the ``process_*`` collector
(CPU, memory, open files of this worker), no GC or platform collectors.

Cost: the customers agent counts per batch (``count_events`` takes the batch's label
tuples and increments each series once) and observes freshness with ``BatchHistogram``,
plain bucket counts (one ``bisect`` per event, no lock), exposed at scrape time.
``PERSONA_METRICS=off`` rebinds the metrics and helpers here to no-ops
(``app.observability.metrics_switch``): callers must look them up as ``metrics.X`` at call time.

Labels are low-cardinality by construction: event types, reasons, subscription ids and
routes are mapped onto fixed sets (``event_type``, ``dlq_reason``, ``subscription``,
``route_template``); no customer id or event id is ever a label value.
"""
from __future__ import annotations

import collections
import time
from bisect import bisect_left
from itertools import accumulate
from typing import Callable, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from app.rules.events import INTERNAL_TYPES, SERVER_TYPES, SHOP_TYPES

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

# -- label rules --------------------------------------------------------------------------
KNOWN_TYPES = frozenset(SHOP_TYPES + SERVER_TYPES + INTERNAL_TYPES)
#: An alias of an anonymous id already merged into another customer (agents/aliases.py).
ALIAS_CONFLICT = "alias conflict"
MERGED_REFUSED = "merged anonymous id"  # app.rules.alias.MERGED_REFUSED
KNOWN_REASONS = frozenset(
    ["malformed JSON", "event is not a JSON object", "invalid envelope", "unsupported version",
     "processing failed", ALIAS_CONFLICT, MERGED_REFUSED]
    + [f"invalid {t} event" for t in KNOWN_TYPES])
OTHER, UNKNOWN, UNMATCHED = "other", "unknown", "unmatched"
APPLIED, DUPLICATE, DEAD_LETTERED, REKEYED = "applied", "duplicate", "dead_lettered", "rekeyed"


def event_type(value) -> str:
    """An event's type as a label: a known type or ``unknown`` (a dead-lettered event
    whose type cannot be told), else ``other``."""
    return value if value in KNOWN_TYPES or value == UNKNOWN else OTHER


def dlq_reason(reason) -> str:
    """A dead-letter reason as a label: one of the fixed reasons, else ``other``."""
    return reason if reason in KNOWN_REASONS else OTHER


def dead_letter_type(reason: str) -> str:
    """The type of a dead-lettered event when its reason names one, else ``unknown``."""
    if reason.startswith("invalid ") and reason.endswith(" event"):
        found = reason[len("invalid "):-len(" event")]
        if found in KNOWN_TYPES:
            return found
    return UNKNOWN


def subscription(sub_id, configured) -> str:
    """A webhook subscription id as a label: configured ids only, else ``unknown``."""
    return sub_id if isinstance(sub_id, str) and sub_id in configured else UNKNOWN


def route_template(request) -> str:
    """The matched route's template (``/v1/customers/{customer_id}/profile``), never the
    raw path; ``unmatched`` when no route matched."""
    route = getattr(getattr(request, "match_info", None), "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else UNMATCHED


# -- a histogram observed a batch at a time ---------------------------------------------
class BatchHistogram:
    """A Prometheus histogram kept as plain bucket counts, exposed when scraped.

    ``observe_many`` costs one ``bisect`` and two additions per value: no lock, no
    per-observation object (the process is one event loop; scrapes run on it too).
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 labelnames: tuple = (), registry: Optional[CollectorRegistry] = REGISTRY):
        self.name, self.documentation = name, documentation
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self.labelnames = tuple(labelnames)
        self.series: dict = {}  # label values -> [counts per bucket (+Inf last), sum]
        if registry is not None:
            registry.register(self)

    def _series(self, labels: tuple) -> list:
        found = self.series.get(labels)
        if found is None:
            assert len(labels) == len(self.labelnames), (labels, self.labelnames)
            found = self.series[labels] = [[0] * (len(self.bounds) + 1), 0.0]
        return found

    def observe_many(self, values: Iterable[float], *labels: str) -> None:
        series = self._series(labels)
        counts, bounds, total = series[0], self.bounds, 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # first bucket with le >= value
            total += value
        series[1] += total

    def observe_ages(self, stamps: Iterable[float], *labels: str,
                     now: Optional[float] = None) -> None:
        """Observe ``now - stamp`` (seconds) for each epoch-seconds ``stamp`` (None: skipped)."""
        now = time.time() if now is None else now
        self.observe_many([now - s for s in stamps if s is not None], *labels)

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for labels, (counts, total) in list(self.series.items()):
            family.add_metric(list(labels), list(zip(les, accumulate(counts), strict=True)), total)
        yield family


class BatchCounter:
    """A Prometheus counter kept as plain numbers per label set, exposed when scraped (no
    lock, no child object per label set: what ``BatchHistogram`` is to a histogram).
    ``cell(labels)`` is the one-element list holding a label set's count, for callers that
    count the same label set often (``http_request``)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple = (),
                 registry: Optional[CollectorRegistry] = REGISTRY):
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.values: dict = {}  # label values -> [count]
        if registry is not None:
            registry.register(self)

    def cell(self, labels: tuple) -> list:
        found = self.values.get(labels)
        if found is None:
            assert len(labels) == len(self.labelnames), (labels, self.labelnames)
            found = self.values[labels] = [0]
        return found

    def describe(self):
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (count,) in list(self.values.items()):
            family.add_metric(list(labels), count)
        yield family


# -- worker state read at scrape time ---------------------------------------------------
class WorkerState:
    """Gauges read from the running worker when scraped (``read`` is bound by
    ``web.metrics``): ``read()`` -> ``{"ready": bool, "recovery_remaining": int,
    "lag": [(topic, partition, lag)]}``."""

    def __init__(self, registry: Optional[CollectorRegistry] = REGISTRY):
        self.read: Optional[Callable[[], dict]] = None
        if registry is not None:
            registry.register(self)

    def describe(self):
        return list(self._families({}))

    def collect(self):
        return self._families(self.read() if self.read is not None else {})

    @staticmethod
    def _families(state: dict):
        ready = GaugeMetricFamily("persona_ready", "1 when recovery is done and no rebalance "
                                  "runs (GET /ready answers 200), else 0")
        remaining = GaugeMetricFamily("persona_recovery_remaining_records",
                                      "changelog records still to restore for active partitions")
        lag = GaugeMetricFamily("persona_consumer_lag", "per assigned partition of a consumed "
                                "topic: high watermark - committed offset",
                                labels=["topic", "partition"])
        if state:
            ready.add_metric([], 1.0 if state["ready"] else 0.0)
            remaining.add_metric([], float(state["recovery_remaining"]))
            for topic, partition, value in state["lag"]:
                lag.add_metric([topic, str(partition)], float(value))
        yield from (ready, remaining, lag)


# -- the metrics --------------------------------------------------------------------------
EVENTS = Counter("persona_events", "events taken by the customers agent, by outcome "
                 "(applied, duplicate, dead_lettered, rekeyed), type and dead-letter reason",
                 ["outcome", "type", "reason"], registry=REGISTRY)
FRESHNESS = BatchHistogram(
    "persona_event_freshness_seconds",
    "Kafka record timestamp of an applied event -> its state is readable (stage=readable: "
    "in the write-back, served by reads) or durable (stage=durable: RocksDB + changelog "
    "acknowledged, offset committable)",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 900),
    ("stage",))
BATCH_SIZE = Histogram("persona_batch_events", "events per customers-agent batch",
                       buckets=(1, 5, 10, 25, 50, 100, 200, 300, 400, 500, 1000),
                       registry=REGISTRY)
BATCH_SECONDS = Histogram("persona_batch_seconds", "wall time to process one batch",
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                          registry=REGISTRY)
FLUSH_SECONDS = Histogram("persona_flush_seconds", "wall time of one write-back flush "
                          "(store writes + changelog acknowledged)",
                          buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                          registry=REGISTRY)
GC_FULL_SECONDS = Histogram("persona_gc_full_seconds", "pause of one full (generation 2) "
                            "collection of the cycle collector (app.observability.gc_policy)",
                            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                            registry=REGISTRY)
CHANGELOG_RECORDS = Counter("persona_changelog_records", "changelog records sent by the "
                            "write-back flush, per table", ["table"], registry=REGISTRY)
PENDING = Gauge("persona_writeback_pending_events", "events applied in memory (readable) "
                "whose offsets wait for the next flush", registry=REGISTRY)
ABANDONED = Counter("persona_writeback_abandoned_events", "events whose state this worker "
                    "dropped unwritten because its write lease ended during a rebalance (not "
                    "committed: the partition's next owner applies them again)",
                    registry=REGISTRY)
REBALANCES = Counter("persona_rebalances", "rebalances this worker took part in",
                     registry=REGISTRY)
WORKER = WorkerState()
WEBHOOKS = Counter("persona_webhooks", "webhook requests by subscription and outcome "
                   "(delivered, retried, dead_lettered, cancelled_erased, handed_back)",
                   ["subscription", "outcome"], registry=REGISTRY)
WEBHOOK_LATENCY = Histogram("persona_webhook_delivery_seconds", "request created (by the "
                            "customers agent) -> delivered (2xx), retries included",
                            ["subscription"], registry=REGISTRY,
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
WEBHOOK_ATTEMPTS = Histogram("persona_webhook_attempts", "attempts a request took until "
                             "delivered or dead-lettered", ["subscription"],
                             buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20), registry=REGISTRY)
HTTP_REQUESTS = BatchCounter("persona_http_requests", "HTTP requests by route template, "
                             "method, status and routing (local, forwarded, for_peer)",
                             ("route", "method", "status", "routing"))
RATE_LIMITED = Counter("persona_rate_limited", "HTTP requests answered 429 by a rate limit, "
                       "by route template and limit (ingest, read, publishable)",
                       ["route", "kind"], registry=REGISTRY)
SEGMENT_CALLS = Counter("persona_segment_calls", "Segment-spec calls (POST /segment/v1/...) by "
                        "call type and outcome (stored, unused, dead_lettered, refused, "
                        "unavailable)", ["call", "outcome"], registry=REGISTRY)
HTTP_SECONDS = BatchHistogram("persona_http_request_seconds", "HTTP request latency per "
                              "route template and method",
                              (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                               5, 10), ("route", "method"))


def count_events(outcomes) -> None:
    """``outcomes``: ``(outcome, type, reason)`` per event (or a ``Counter`` of them ->
    events); counted once per label set, the type mapped onto the known types."""
    for (outcome, kind, reason), n in collections.Counter(outcomes).items():
        EVENTS.labels(outcome, event_type(kind), reason).inc(n)


def webhook_done(sub: str, outcome: str, attempts: int = 0,
                 created_ms: Optional[int] = None) -> None:
    """One webhook outcome; ``attempts`` and latency are observed for final outcomes."""
    WEBHOOKS.labels(sub, outcome).inc()
    if outcome in ("delivered", "dead_lettered") and attempts:
        WEBHOOK_ATTEMPTS.labels(sub).observe(attempts)
    if outcome == "delivered" and created_ms:
        WEBHOOK_LATENCY.labels(sub).observe(max(0.0, time.time() - created_ms / 1000))


#: ``(route, method, status, routing)`` -> (the counter it was made for, its count cell):
#: every request counts, so it is an addition and the histogram's ``observe_many``, on plain
#: numbers (0.4 µs a request against prometheus-client's locked ``inc`` and ``observe``,
#: 1.0 µs). The first element notices ``metrics_switch`` rebinding the metrics.
_HTTP_COUNTS: dict = {}


def http_request(route: str, method: str, status: int, routing: str, seconds: float) -> None:
    key = (route, method, status, routing)
    counted = _HTTP_COUNTS.get(key)
    if counted is None or counted[0] is not HTTP_REQUESTS:
        counted = _HTTP_COUNTS[key] = (
            HTTP_REQUESTS, HTTP_REQUESTS.cell((route, method, str(status), routing)))
    counted[1][0] += 1
    HTTP_SECONDS.observe_many((seconds,), route, method)
