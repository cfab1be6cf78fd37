"""``app.observability.metrics``: label rules (fixed sets, never an id), the batch histogram against
prometheus-client's own, per-batch counting, the scrape-time gauges, and the exposition."""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.parser import text_string_to_metric_families

from app.auth.apikeys import parse_keys
from app.auth.jwt_auth import map_scopes
from app.observability import metrics
from app.rules.events import SHOP_TYPES, InvalidEvent, parse

BAD = [b'{"type": "product_view", "customer_id": "x", "ts": 1', b"[1, 2]",
       b'{"event_id": "a", "type": "teleport", "customer_id": "x", "ts": 1}',
       b'{"event_id": "a", "type": "cart_add", "customer_id": "x", "ts": 1}',
       b'{"event_id": "a", "type": "search", "customer_id": "x", "ts": 1, "v": 9}']


def value(name, **labels):
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def reasons_of(raws):
    out = []
    for raw in raws:
        with pytest.raises(InvalidEvent) as exc:
            parse(raw)
        out.append(exc.value.reason)
    return out


def test_every_reason_the_rules_give_is_a_label_as_it_is():
    reasons = reasons_of(BAD)
    assert set(reasons) == {"malformed JSON", "event is not a JSON object", "invalid envelope",
                            "invalid cart_add event", "unsupported version"}
    assert [metrics.dlq_reason(r) for r in reasons] == reasons
    assert metrics.dlq_reason("customer cust-42 is odd") == "other"
    assert metrics.dlq_reason(None) == "other"


def test_types_and_subscriptions_map_onto_fixed_sets():
    assert [metrics.event_type(t) for t in SHOP_TYPES] == list(SHOP_TYPES)
    assert metrics.event_type("erase") == "erase"
    assert metrics.event_type("cust-42") == "other" and metrics.event_type("unknown") == "unknown"
    assert metrics.dead_letter_type("invalid cart_add event") == "cart_add"
    assert metrics.dead_letter_type("invalid teleport event") == "unknown"
    assert metrics.dead_letter_type("malformed JSON") == "unknown"
    assert metrics.subscription("crm", {"crm": 1}) == "crm"
    assert metrics.subscription("evil", {"crm": 1}) == "unknown"
    assert metrics.subscription(["crm"], {"crm": 1}) == "unknown"  # malformed record


async def test_route_label_is_the_template_never_the_path():
    from aiohttp import web

    router = web.UrlDispatcher()
    router.add_get("/v1/customers/{customer_id}/profile", lambda r: None)
    request = make_mocked_request("GET", "/v1/customers/cust-42/profile")
    match = await router.resolve(request)
    label = metrics.route_template(SimpleNamespace(match_info=match))
    assert label == "/v1/customers/{customer_id}/profile" and "cust-42" not in label
    missing = await router.resolve(make_mocked_request("GET", "/nope/cust-42"))
    assert metrics.route_template(SimpleNamespace(match_info=missing)) == "unmatched"
    assert metrics.route_template(SimpleNamespace()) == "unmatched"


@given(st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), max_size=60))
def test_batch_histogram_equals_prometheus_clients_histogram(values):
    buckets = (0.01, 0.5, 1, 5, 60)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = metrics.BatchHistogram("h_seconds", "doc", buckets, ("stage",), ours_registry)
    theirs = Histogram("h_seconds", "doc", ["stage"], buckets=buckets, registry=theirs_registry)
    ours.observe_many(values, "x")
    for v in values:
        theirs.labels("x").observe(v)
    if not values:
        theirs.labels("x")  # the series exists on both sides once touched
        ours.observe_many([], "x")

    def samples(registry):
        fams = text_string_to_metric_families(generate_latest(registry).decode())
        return sorted((s.name, tuple(sorted(s.labels.items())), round(s.value, 6))
                      for f in fams for s in f.samples if not s.name.endswith("_created"))

    assert samples(ours_registry) == samples(theirs_registry)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5)), max_size=40))
def test_batch_counter_equals_prometheus_clients_counter(increments):
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = metrics.BatchCounter("c", "doc", ("kind",), ours_registry)
    theirs = PromCounter("c", "doc", ["kind"], registry=theirs_registry)
    for kind, n in increments:
        ours.cell((kind,))[0] += n
        theirs.labels(kind).inc(n)

    def samples(registry):
        fams = text_string_to_metric_families(generate_latest(registry).decode())
        return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                      for f in fams for s in f.samples if not s.name.endswith("_created"))

    assert samples(ours_registry) == samples(theirs_registry)


def test_http_request_counts_and_times_each_request():
    route = "/v1/customers/{customer_id}/profile"
    before = (value("persona_http_requests_total", route=route, method="GET", status="200",
                    routing="local"),
              value("persona_http_request_seconds_bucket", route=route, method="GET", le="0.005"),
              value("persona_http_request_seconds_bucket", route=route, method="GET", le="0.0025"))
    metrics.http_request(route, "GET", 200, "local", 0.003)
    metrics.http_request(route, "GET", 200, "local", 0.0004)
    after = (value("persona_http_requests_total", route=route, method="GET", status="200",
                   routing="local"),
             value("persona_http_request_seconds_bucket", route=route, method="GET", le="0.005"),
             value("persona_http_request_seconds_bucket", route=route, method="GET", le="0.0025"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 1]


def test_observe_ages_skips_missing_timestamps():
    h = metrics.BatchHistogram("age_seconds", "doc", (1, 10), (), None)
    h.observe_ages([100.0, None, 95.0, 50.0], now=100.5)
    counts, total = h.series[()]
    assert counts == [1, 1, 1] and total == pytest.approx(0.5 + 5.5 + 50.5)


def test_count_events_increments_once_per_label_set():
    before = value("persona_events_total", outcome="applied", type="search", reason="")
    other = value("persona_events_total", outcome="rekeyed", type="other", reason="")
    tally = Counter([("applied", "search", "")] * 3 + [("rekeyed", "cust-42", "")])
    metrics.count_events(tally)
    assert value("persona_events_total", outcome="applied", type="search", reason="") == before + 3
    assert value("persona_events_total", outcome="rekeyed", type="other", reason="") == other + 1


def test_webhook_outcomes_latency_and_attempts():
    before = value("persona_webhook_attempts_count", subscription="crm")
    metrics.webhook_done("crm", "retried")
    metrics.webhook_done("crm", "delivered", 2, created_ms=1)
    metrics.webhook_done("crm", "dead_lettered", 6)
    assert value("persona_webhook_attempts_count", subscription="crm") == before + 2
    assert value("persona_webhooks_total", subscription="crm", outcome="retried") >= 1
    assert value("persona_webhook_delivery_seconds_count", subscription="crm") >= 1


def test_worker_state_is_read_when_scraped():
    registry = CollectorRegistry()
    state = metrics.WorkerState(registry)
    assert "\npersona_ready " not in generate_latest(registry).decode()  # unbound: no samples
    state.read = lambda: {"ready": True, "recovery_remaining": 7,
                          "lag": [("events", 3, 12), ("webhook-deliveries", 0, 0)]}
    text = generate_latest(registry).decode()
    assert "persona_ready 1.0" in text and "persona_recovery_remaining_records 7.0" in text
    assert 'persona_consumer_lag{partition="3",topic="events"} 12.0' in text


def test_exposition_parses_and_names_are_persona_or_process():
    metrics.http_request("/v1/customers/{customer_id}/profile", "GET", 200, "local", 0.003)
    names = {f.name for f in text_string_to_metric_families(
        generate_latest(metrics.REGISTRY).decode())}
    assert {"persona_events", "persona_event_freshness_seconds", "persona_http_requests",
            "persona_http_request_seconds", "persona_consumer_lag", "persona_ready",
            "persona_changelog_records", "persona_webhooks"} <= names
    assert all(n.startswith(("persona_", "process_")) for n in names), names


def test_the_metrics_scope_for_keys_and_tokens():
    keys = parse_keys("prom-0123456789abcdef:metrics,ops-0123456789abcdef:admin|read")
    assert keys[0][1] == {"metrics"}
    assert map_scopes({"scope": "read metrics other"}) == {"read", "metrics"}


def test_lag_per_assigned_partition_of_the_consumed_topics():
    from faust.types import TP

    from web.metrics import LAG_TOPICS, lag_samples

    assert LAG_TOPICS == {"events", "webhook-deliveries"}
    high = {TP("events", 0): 10, TP("events", 1): None, TP("webhook-deliveries", 2): 5,
            TP("persona-profiles-changelog", 0): 99}
    consumer = SimpleNamespace(assignment=lambda: set(high), highwater=high.get)
    committed = {TP("events", 0): 4, TP("persona-profiles-changelog", 0): 1}.get
    assert lag_samples(consumer, committed) == [("events", 0, 6), ("webhook-deliveries", 2, 5)]


def test_the_sensor_counts_requests_by_template_routing_and_status():
    from web.metrics import PersonaSensor
    from web.routing import ROUTING

    route = SimpleNamespace(resource=SimpleNamespace(canonical="/v1/customers/{customer_id}"))

    class Request(dict):
        method = "DELETE"
        match_info = SimpleNamespace(route=route)

    def count(status, routing):
        return value("persona_http_requests_total", route=route.resource.canonical,
                     method="DELETE", status=status, routing=routing)

    sensor, request = PersonaSensor(), Request()
    before = (count("202", "local"), count("500", "forwarded"))
    sensor.on_web_request_end(None, request, SimpleNamespace(status=202),
                              sensor.on_web_request_start(None, request))
    request[ROUTING] = "forwarded"
    sensor.on_web_request_end(None, request, None, sensor.on_web_request_start(None, request))
    assert (count("202", "local"), count("500", "forwarded")) == (before[0] + 1, before[1] + 1)
    rebalances = value("persona_rebalances_total")
    assert sensor.on_rebalance_start(None) == {}
    assert value("persona_rebalances_total") == rebalances + 1


def test_worker_state_never_fails_a_scrape(monkeypatch):
    import web.metrics as web_metrics

    state = web_metrics.worker_state()  # no consumer started in this process
    assert state["lag"] == [] and state["ready"] is False

    def broken(*args):
        raise AssertionError("Partition is not assigned")  # aiokafka during a rebalance

    monkeypatch.setattr(web_metrics, "lag_samples", broken)
    assert web_metrics.worker_state()["lag"] == []
