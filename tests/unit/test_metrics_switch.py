"""``app.observability.metrics_switch``: PERSONA_METRICS parsing, the null metric, and ``configure``: off
makes every metric and public helper of ``app.observability.metrics`` a no-op (no series moves), on
restores the real ones; no module binds a metric object by name (rebinding would miss it)."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from app.observability import metrics, metrics_switch
from app.observability.metrics_switch import NULL, configure, metrics_enabled
from app.settings import ConfigError, load

ROOT = Path(__file__).resolve().parents[2]


def persona_samples() -> dict:
    """Every Persona sample (process_* excluded: CPU moves by itself) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.REGISTRY.collect() if family.name.startswith("persona_")
            for s in family.samples}


def record_everything() -> None:
    """What the hot paths record: customers/aliases agents, write-back, KPI rows,
    webhooks, the request sensor, the rate limiter."""
    metrics.count_events([(metrics.APPLIED, "product_view", ""),
                          (metrics.DUPLICATE, "cart_add", "")])
    metrics.FRESHNESS.observe_ages([1.0, None, 2.0], "readable", now=3.0)
    metrics.FRESHNESS.observe_many([0.5], "durable")
    metrics.BATCH_SIZE.observe(2)
    metrics.BATCH_SECONDS.observe(0.01)
    metrics.FLUSH_SECONDS.observe(0.02)
    metrics.CHANGELOG_RECORDS.labels("profiles").inc(3)
    metrics.PENDING.set(7)
    metrics.REBALANCES.inc()
    metrics.webhook_done("crm", "delivered", 2, 1_700_000_000_000)
    metrics.http_request("/v1/events", "POST", 202, "local", 0.003)
    metrics.RATE_LIMITED.labels("/v1/events", "ingest").inc()


@pytest.fixture
def restore():
    yield
    configure(True)


def test_the_setting_is_on_by_default_and_only_on_or_off():
    assert metrics_enabled({}) and metrics_enabled({"PERSONA_METRICS": ""})
    assert metrics_enabled({"PERSONA_METRICS": "on"})
    assert not metrics_enabled({"PERSONA_METRICS": " OFF "})
    assert load({}).metrics is True and load({"PERSONA_METRICS": "off"}).metrics is False
    for bad in ("1", "false", "disabled"):
        with pytest.raises(ConfigError, match=f"^PERSONA_METRICS must be on or off, got '{bad}'"):
            load({"PERSONA_METRICS": bad})


def test_the_null_metric_takes_any_labels_and_does_nothing():
    assert NULL.labels("a", "b") is NULL and NULL.labels(route="x") is NULL
    assert NULL.labels("a").inc(5) is None and NULL.set(1) is None and NULL.observe(1) is None
    assert NULL.observe_many([1, 2], "readable") is None
    assert NULL.observe_ages([1.0], "durable", now=2.0) is None


def test_every_metric_object_and_helper_is_switched():
    assert set(metrics_switch.REAL_METRICS) == {
        "EVENTS", "FRESHNESS", "BATCH_SIZE", "BATCH_SECONDS", "FLUSH_SECONDS", "GC_FULL_SECONDS",
        "CHANGELOG_RECORDS", "PENDING", "ABANDONED", "REBALANCES", "WEBHOOKS", "WEBHOOK_LATENCY",
        "WEBHOOK_ATTEMPTS", "HTTP_REQUESTS", "RATE_LIMITED", "HTTP_SECONDS", "SEGMENT_CALLS"}


def test_off_records_nothing_and_on_restores_the_real_metrics(restore):
    assert metrics_switch.enabled()
    configure(False)
    assert not metrics_switch.enabled()
    assert all(getattr(metrics, n) is NULL for n in metrics_switch.REAL_METRICS)
    before = persona_samples()
    record_everything()
    assert persona_samples() == before  # no series moved, none appeared
    assert metrics.WORKER is not NULL  # read only when scraped: not switched

    configure(True)
    assert metrics_switch.enabled()
    assert all(getattr(metrics, n) is real for n, real in metrics_switch.REAL_METRICS.items())
    assert all(getattr(metrics, n) is f for n, f in metrics_switch.REAL_HELPERS.items())
    record_everything()
    after = persona_samples()
    moved = {k[0] for k in after if after[k] != before.get(k)}
    assert {"persona_events_total", "persona_event_freshness_seconds_count",
            "persona_batch_events_count", "persona_flush_seconds_count",
            "persona_changelog_records_total", "persona_writeback_pending_events",
            "persona_rebalances_total", "persona_webhooks_total",
            "persona_webhook_delivery_seconds_count", "persona_http_requests_total",
            "persona_http_request_seconds_count", "persona_rate_limited_total"} <= moved


def test_count_events_counts_a_list_or_a_counter_once_per_label_set():
    key = ("persona_events_total", (("outcome", "rekeyed"), ("reason", ""), ("type", "search")))
    start = persona_samples().get(key, 0.0)
    metrics.count_events([(metrics.REKEYED, "search", "")] * 3)
    metrics.count_events(Counter({(metrics.REKEYED, "search", ""): 2}))
    assert persona_samples()[key] == start + 5


def test_no_module_binds_a_metric_object_by_name():
    """``from app.observability.metrics import EVENTS`` would keep the real object when metrics are off."""
    switched = set(metrics_switch.REAL_METRICS) | set(metrics_switch.HELPERS)
    offenders = []
    for folder in ("app", "agents", "tables", "web", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "app.observability.metrics":
                    offenders += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names
                                  if a.name in switched or a.name == "*"]
    assert not offenders, offenders
