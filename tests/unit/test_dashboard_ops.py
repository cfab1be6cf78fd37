"""``GET /v1/ops`` figures (``web.dashboard``): read from prometheus-client families the way
``/metrics`` exposes them, and summed over workers."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from web.dashboard import add, figures


def worker_registry(applied: int, lag: int, ages: list) -> CollectorRegistry:
    r = CollectorRegistry()
    events = Counter("persona_events", "", ["outcome", "type", "reason"], registry=r)
    events.labels("applied", "product_view", "").inc(applied)
    events.labels("dead_lettered", "unknown", "invalid json").inc(2)
    hooks = Counter("persona_webhooks", "", ["subscription", "outcome"], registry=r)
    hooks.labels("crm", "delivered").inc(3)
    hooks.labels("crm", "retried").inc(1)
    consumer_lag = Gauge("persona_consumer_lag", "", ["topic", "partition"], registry=r)
    consumer_lag.labels("events", "0").set(lag)
    consumer_lag.labels("events", "1").set(1)
    consumer_lag.labels("webhook-deliveries", "0").set(7)
    fresh = Histogram("persona_event_freshness_seconds", "", ["stage"], buckets=(0.1, 1),
                      registry=r)
    for age in ages:
        fresh.labels("readable").observe(age)
        fresh.labels("durable").observe(age + 5)
    return r


def test_one_worker_and_the_sum_of_two():
    one = figures(worker_registry(10, 4, [0.05, 0.5]).collect())
    assert one == {"workers": 1, "events": {"applied": 10.0, "dead_lettered": 2.0},
                   "webhooks": {"delivered": 3.0, "retried": 1.0}, "lag": 5.0,
                   "outbox_backlog": 7.0,
                   "freshness": {"bounds": [0.1, 1.0, None], "counts": [1.0, 2.0, 2.0]}}
    add(one, figures(worker_registry(5, 0, [2.0]).collect()))
    assert one["workers"] == 2 and one["events"]["applied"] == 15 and one["lag"] == 6
    assert one["freshness"]["counts"] == [1.0, 2.0, 3.0]
    assert one["webhooks"] == {"delivered": 6.0, "retried": 2.0}
