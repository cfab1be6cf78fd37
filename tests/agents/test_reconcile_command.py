"""The customers agent applies a ``reconcile`` command (persona-reconcile --repair) under Faust's
test context: compare-and-set by digest, a deleted document, no effect on a moved one."""
from __future__ import annotations

from unittest.mock import AsyncMock

import orjson
import pytest

import agents.customers as customers
from app.rules import dedupe, reconcile
from tables.documents import read
from tables.profiles import profiles
from tables.sessions import sessions

T0 = 1_700_000_000_000


def view(i, cid="c1"):
    return orjson.dumps({"event_id": f"e{i}", "type": "product_view", "customer_id": cid,
                         "ts": T0 + i * 1000, "product_id": f"p{i}", "category": "shoes"})


@pytest.fixture
def agent_state(monkeypatch):
    monkeypatch.setattr(customers.events_dlq, "send", AsyncMock())
    monkeypatch.setattr(customers, "partition_of", lambda topic, key: 0)
    sessions.data.clear()
    profiles.data.clear()
    customers.state.forget()
    yield


async def put(*values):
    async with customers.process_events.test_context() as agent:
        for value in values:
            await agent.put(value, key=b"c1", partition=0)


async def test_a_command_replaces_only_the_document_it_saw(agent_state):
    await put(view(1), view(2))
    session, profile = read(sessions, "c1"), read(profiles, "c1")
    wrong = {**profile, "counts": {"product_view": 40}}
    right = {**profile, "counts": {"product_view": 2}}
    stale = reconcile.command("c1", {"profiles": (wrong, right)}, T0, "r-stale")
    await put(orjson.dumps(stale))
    assert read(profiles, "c1") == profile  # not the document the command saw: untouched

    fix = reconcile.command("c1", {"profiles": (profile, {**right, "orders": 3}),
                                   "sessions": (session, None)}, T0, "r-fix")
    await put(orjson.dumps(fix))
    fixed = read(profiles, "c1")
    assert fixed["orders"] == 3 and fixed[reconcile.POS][0] == 0  # stamped by the agent
    assert read(sessions, "c1") is None
    assert not dedupe.seen(fixed, "r-fix")  # a command is not an event of the customer

    await put(orjson.dumps(fix))  # redelivered: the document has moved on, a no-op
    assert read(profiles, "c1") == fixed
