"""``PERSONA_METRICS`` (``on``, the default, or ``off``): whether this worker records metrics.

Why a switch: to know what the metrics cost; ``make bench`` answers it by ingesting
the same events with metrics on and then off (bench/run.py, phase ``metrics``). It is also
the way to run a worker whose operators scrape nothing.

``metrics_enabled(env)`` is what ``app.settings`` calls (a value other than on/off stops the
worker at start naming the variable). ``configure(enabled)`` is called once by ``app.main``:
with ``off`` it rebinds every metric object of ``app.observability.metrics`` to ``NULL`` (``labels()``
returns itself, ``inc``/``set``/``observe``/``observe_many``/``observe_ages`` do nothing) and
its helpers ``count_events``, ``webhook_done`` and ``http_request`` to a no-op. Callers look
``metrics.X`` up at call time (no module imports a metric object by name), so the hot paths
then record nothing. ``configure(True)`` restores the real objects. ``web.metrics`` adds no
request sensor when off, and ``GET /metrics`` and ``GET /v1/ops`` answer 404 (``OFF``).
"""
from __future__ import annotations

from typing import Mapping

from prometheus_client.metrics import MetricWrapperBase

from app.observability import metrics

VARIABLE = "PERSONA_METRICS"
#: The body of ``GET /metrics`` and ``GET /v1/ops`` when metrics are off (status 404).
OFF = {"error": "metrics off",
       "detail": f"this worker runs with {VARIABLE}=off: it records no metrics"}


def metrics_enabled(env: Mapping[str, str]) -> bool:
    """PERSONA_METRICS, validated: ``on`` (default, also when empty) or ``off``."""
    raw = env.get(VARIABLE, "").strip().lower()
    if raw in ("", "on"):
        return True
    if raw == "off":
        return False
    raise ValueError(f"{VARIABLE} must be on or off, got {env.get(VARIABLE)!r}")


class NullMetric:
    """Every metric when metrics are off: any label set is this object, every call a no-op."""

    __slots__ = ()

    def labels(self, *values, **named) -> NullMetric:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass

    def observe_many(self, values, *labels) -> None:
        pass

    def observe_ages(self, stamps, *labels, now=None) -> None:
        pass


NULL = NullMetric()


def _nothing(*args, **kwargs) -> None:
    """``count_events``, ``webhook_done`` and ``http_request`` when metrics are off."""


#: The real objects, taken when this module is first imported (before any ``configure``).
#: Metrics: every Counter/Gauge/Histogram, BatchHistogram and BatchCounter of
#: ``app.observability.metrics``, found by type so a new one is covered; ``WORKER`` is read
#: only when scraped and stays.
REAL_METRICS = {name: value for name, value in vars(metrics).items()
                if isinstance(value, (MetricWrapperBase, metrics.BatchHistogram,
                                      metrics.BatchCounter))}
HELPERS = ("count_events", "webhook_done", "http_request")
REAL_HELPERS = {name: getattr(metrics, name) for name in HELPERS}


def configure(enabled: bool) -> None:
    """Real metrics (``True``) or the no-op ones (``False``) in ``app.observability.metrics``."""
    for name, real in REAL_METRICS.items():
        setattr(metrics, name, real if enabled else NULL)
    for name, real in REAL_HELPERS.items():
        setattr(metrics, name, real if enabled else _nothing)


def enabled() -> bool:
    """Whether ``app.observability.metrics`` records now (the last ``configure``; on by default)."""
    return metrics.EVENTS is REAL_METRICS["EVENTS"]
