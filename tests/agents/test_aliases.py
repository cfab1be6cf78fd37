"""Aliasing in the customers agent (``agents/aliases.py``) under Faust's test context.

The events the agent forwards to the identified customer are recorded (not produced); that
they are then applied there, on another worker's partition, is covered by
``tests/e2e/test_alias.py`` and, for any order, by ``tests/unit/test_alias.py``.
"""
from __future__ import annotations

import asyncio

import orjson

import agents.customers as customers
from app.rules import alias
from tables.documents import read
from tables.profiles import profiles
from tables.sessions import sessions
from tests.agents.test_customers import T0, ev, outbox  # noqa: F401 (the fixture)

ANON = "anon-7c1d"


def alias_event(event_id="al-1", customer="cust-1"):
    return orjson.dumps({"event_id": event_id, "type": "alias", "customer_id": customer,
                         "anonymous_id": ANON, "ts": T0 + 60_000})


def forwarded(outbox):  # noqa: F811
    return [(c.kwargs["key"], orjson.loads(c.kwargs["value"]))
            for c in outbox["events"].await_args_list]


async def test_alias_forwards_the_anonymous_events_and_leaves_a_redirect(outbox):  # noqa: F811
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    outbox["events"].return_value = done  # the broker's acknowledgement
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1, cid=ANON), key=ANON.encode(), partition=0)
        await agent.put(ev(2, "cart_add", cid=ANON, product_id="p1", quantity=1, price=5.0),
                        key=ANON.encode(), partition=0)
        await agent.put(alias_event(), key=ANON.encode(), partition=0)
        await agent.put(alias_event("al-2"), key=ANON.encode(), partition=0)  # repeated
        await agent.put(ev(3, cid=ANON), key=ANON.encode(), partition=0)  # after the alias
        await agent.put(alias_event("al-3", "cust-2"), key=ANON.encode(), partition=0)
    sent = forwarded(outbox)
    assert [key for key, _ in sent] == [b"cust-1"] * 3
    assert [e["event_id"] for _, e in sent] == ["e1", "e2", "e3"]
    assert all(e["customer_id"] == "cust-1" for _, e in sent)
    assert read(sessions, ANON) is None
    assert alias.merged_into(read(profiles, ANON)) == "cust-1"
    await customers.state.flush()
    assert ANON not in sessions and orjson.loads(profiles[ANON])["merged_into"] == "cust-1"
    dlq = [orjson.loads(c.kwargs["value"]) for c in outbox["dlq"].await_args_list]
    assert [d["reason"] for d in dlq] == ["alias conflict"]


async def test_an_alias_is_applied_at_the_anonymous_ids_partition(outbox):  # noqa: F811
    async with customers.process_events.test_context() as agent:
        await agent.put(alias_event(), key=b"cust-1", partition=0)  # keyed by the wrong id
    assert [c.kwargs["key"] for c in outbox["events"].await_args_list] == [ANON.encode()]
    assert read(profiles, ANON) is None
