"""The customers agent counts what it did (``app.observability.metrics``): outcomes per batch, freshness
when readable and when durable, batch sizes, changelog records; under Faust's test context."""
from __future__ import annotations

import orjson

import agents.customers as customers
from app.observability.metrics import REGISTRY
from tests.agents.test_customers import ev, outbox  # noqa: F401  (fixture)


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


OUTCOMES = [("applied", "product_view", ""), ("applied", "cart_add", ""),
            ("duplicate", "product_view", ""), ("rekeyed", "product_view", ""),
            ("dead_lettered", "unknown", "malformed JSON"),
            ("dead_lettered", "cart_add", "invalid cart_add event")]
FRESH = [("readable",), ("durable",)]


def snapshot():
    out = {o: value("persona_events_total", outcome=o[0], type=o[1], reason=o[2])
           for o in OUTCOMES}
    out.update({s: value("persona_event_freshness_seconds_count", stage=s[0]) for s in FRESH})
    out["batches"] = value("persona_batch_events_count")
    out["batch_events"] = value("persona_batch_events_sum")
    out["profiles"] = value("persona_changelog_records_total", table="profiles")
    return out


async def test_outcomes_freshness_and_batches_are_counted(outbox):  # noqa: F811
    before = snapshot()
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
        await agent.put(ev(2, "cart_add", product_id="p1", quantity=1), key=b"c1", partition=0)
        await agent.put(ev(1), key=b"c1", partition=0)  # redelivered
        await agent.put(ev(3, cid="c2"), key=b"elsewhere", partition=0)  # re-keyed
        await agent.put(b"{nope", key=b"c1", partition=0)
        await agent.put(orjson.dumps({"event_id": "b", "type": "cart_add", "customer_id": "c1",
                                      "ts": 1}), key=b"c1", partition=0)
    after = snapshot()
    delta = {k: after[k] - before[k] for k in after}
    assert [delta[o] for o in OUTCOMES] == [1, 1, 1, 1, 1, 1]
    assert delta[("readable",)] == 3  # applied + duplicate: the events that reached the state
    assert delta[("durable",)] == 0  # not flushed yet
    assert delta["batch_events"] == 6 and delta["batches"] >= 1
    assert value("persona_writeback_pending_events") == 6
    await customers.state.flush()
    assert value("persona_event_freshness_seconds_count", stage="durable") == after[("durable",)] + 3
    assert value("persona_changelog_records_total", table="profiles") == after["profiles"] + 1
    assert value("persona_writeback_pending_events") == 0
