"""The customers agent under Faust's test context (in-memory tables, no broker).

Outbound topic sends (DLQ, re-key) are recorded instead of produced; the real
produce path is covered by the end-to-end tests.
"""
from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

import agents.customer_state as customer_state
import agents.customers as customers
from app.main import app
from app.rules import dedupe
from tables import erasures
from tables.documents import read, source
from tables.profiles import profiles
from tables.sessions import sessions

T0 = 1_700_000_000_000


def ev(i, kind="product_view", cid="c1", **fields):
    base = {"event_id": f"e{i}", "type": kind, "customer_id": cid, "ts": T0 + i * 1000}
    if kind == "product_view":
        base.update(product_id=f"p{i}", category="shoes", price=10.0)
    base.update(fields)
    return orjson.dumps(base)


@pytest.fixture
def outbox(monkeypatch):
    sent = {"dlq": AsyncMock(), "events": AsyncMock()}
    monkeypatch.setattr(customers.events_dlq, "send", sent["dlq"])
    monkeypatch.setattr(customers.events_topic, "send", sent["events"])
    monkeypatch.setattr(customers, "partition_of", lambda topic, key: 0)
    sessions.data.clear()
    profiles.data.clear()
    erasures.erasures.data.clear()
    customers.state.forget()
    yield sent


def test_autodiscovery_finds_every_agent_and_table():
    app.discover()
    assert "agents.customers.process_events" in app.agents
    assert {"sessions", "profiles", "erasures"} <= set(app.tables)


async def test_events_update_both_tables_and_duplicates_are_noops(outbox):
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
        await agent.put(ev(2, "cart_add", product_id="p1", quantity=2, price=5.0),
                        key=b"c1", partition=0)
        await agent.put(ev(2, "cart_add", product_id="p1", quantity=2, price=5.0),
                        key=b"c1", partition=0)  # redelivered
    session, profile = read(sessions, "c1"), read(profiles, "c1")
    assert session["events"] == 2
    assert session["cart"]["p1"]["quantity"] == 2
    assert profile["counts"] == {"product_view": 1, "cart_add": 1}
    outbox["dlq"].assert_not_awaited()


async def test_invalid_events_go_to_the_dlq_and_the_agent_keeps_going(outbox):
    async with customers.process_events.test_context() as agent:
        await agent.put(b"{not json", key=b"c1", partition=0)
        await agent.put(orjson.dumps({"type": "cart_add", "customer_id": "c1", "ts": 1}),
                        key=b"c1", partition=0)
        await agent.put(ev(3), key=b"c1", partition=0)
    reasons = [orjson.loads(c.kwargs["value"])["reason"] for c in outbox["dlq"].await_args_list]
    assert reasons == ["malformed JSON", "invalid cart_add event"]
    record = orjson.loads(outbox["dlq"].await_args_list[0].kwargs["value"])
    assert record["raw"] == "{not json" and record["source"]["partition"] == 0
    assert read(profiles, "c1")["counts"] == {"product_view": 1}


async def test_unexpected_errors_are_parked_not_crashing(outbox, monkeypatch):
    def boom(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr(customer_state.session_state, "apply_to_session", boom)
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
    (call,) = outbox["dlq"].await_args_list
    assert orjson.loads(call.kwargs["value"])["reason"] == "processing failed"


async def test_misrouted_events_are_rekeyed_not_applied(outbox):
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=None, partition=0)
        await agent.put(ev(2), key=b"someone-else", partition=0)
    assert [c.kwargs["key"] for c in outbox["events"].await_args_list] == [b"c1", b"c1"]
    assert "c1" not in profiles


async def test_erase_removes_the_customer_from_both_tables(outbox):
    erase = orjson.dumps({"event_id": "x", "type": "erase", "customer_id": "c1", "ts": T0})
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
        await agent.put(ev(1, cid="c2"), key=b"c2", partition=0)
        await agent.put(erase, key=b"c1", partition=0)
    assert read(sessions, "c1") is None and read(profiles, "c1") is None
    await customers.state.flush()
    assert "c1" not in sessions and "c1" not in profiles
    assert "c2" in profiles


async def test_erase_leaves_a_marker_at_its_position_that_cancels_older_requests(outbox):
    erase = orjson.dumps({"event_id": "x", "type": "erase", "customer_id": "c1", "ts": T0})
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
        await agent.put(erase, key=b"c1", partition=0)
        await agent.put(ev(2), key=b"c1", partition=0)  # the customer comes back
    mark = erasures.marker_of("c1")
    assert mark["customer_id"] == "c1" and mark["pos"][0] == 0
    erased_at = mark["pos"][1]
    assert erasures.cancelled({"customer_id": "c1", "source": [0, erased_at - 1]})
    assert not erasures.cancelled({"customer_id": "c1", "source": [0, erased_at + 1]})
    assert not erasures.cancelled({"customer_id": "c2", "source": [0, 0]})
    assert read(profiles, "c1")["counts"] == {"product_view": 1}  # only the new event
    async with customers.process_events.test_context() as agent:  # offsets from 0: older
        await agent.put(orjson.dumps({"event_id": "y", "type": "erase", "customer_id": "c1",
                                      "ts": T0}), key=b"c1", partition=0)
    assert erasures.marker_of("c1") == mark  # never moved back


async def test_a_redelivered_event_republishes_the_state(outbox, monkeypatch):
    """After a crash the local store can be ahead of the changelog: a duplicate re-sends it."""
    writes = []
    original = profiles.on_key_set

    def spy(key, value):
        writes.append(key)
        return original(key, value)

    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
    await customers.state.flush()
    before = read(profiles, "c1")
    monkeypatch.setattr(profiles, "on_key_set", spy)
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)  # redelivered in a later batch
    await customers.state.flush()
    assert writes == ["c1"]
    assert read(profiles, "c1") == before and before["counts"] == {"product_view": 1}


async def test_a_redelivered_run_longer_than_the_event_id_memory_counts_once(outbox):
    """After a crash, everything since the last commit comes again: for one busy customer
    that can be more events than the rules remember ids of (256). The position stamped on
    each stored document (``customer_state.POS``) still tells each of them as a redelivery."""
    n = 300
    async with customers.process_events.test_context() as agent:
        for i in range(n):
            await agent.put(ev(i), key=b"c1", partition=0, wait=False)
        for _ in range(200):
            if (read(profiles, "c1") or {}).get("counts") == {"product_view": n}:
                break
            await asyncio.sleep(0.02)
    await customers.state.flush()
    first = read(profiles, "c1")
    assert first["counts"] == {"product_view": n} and first[customer_state.POS] == [0, n - 1]
    assert dedupe.count(first) < n  # the rules alone would count the oldest again
    async with customers.process_events.test_context() as agent:  # offsets from 0 again
        assert agent.sent_offset == 0
        for i in range(n // 2):  # its own batch and flush: the stamp must not move back
            await agent.put(ev(i), key=b"c1", partition=0, wait=False)
        for _ in range(50):
            await asyncio.sleep(0.02)
        await customers.state.flush()
        assert read(profiles, "c1")[customer_state.POS] == [0, n - 1]
        for i in range(n // 2, n):
            await agent.put(ev(i), key=b"c1", partition=0, wait=False)
        await agent.put(ev(n), key=b"c1", partition=0, wait=False)  # new, after the replay
        for _ in range(200):
            if (read(profiles, "c1") or {}).get(customer_state.POS) == [0, n]:
                break
            await asyncio.sleep(0.02)
    await customers.state.flush()
    after = read(profiles, "c1")
    assert after["counts"] == {"product_view": n + 1} and after[customer_state.POS] == [0, n]
    assert read(sessions, "c1")["events"] == n + 1


async def test_a_batch_writes_each_customer_once(outbox, monkeypatch):
    writes = []
    original = profiles.on_key_set
    monkeypatch.setattr(profiles, "on_key_set", lambda k, v: (writes.append(k), original(k, v)))
    async with customers.process_events.test_context() as agent:
        for i in range(1, 6):
            await agent.put(ev(i), key=b"c1", partition=0, wait=False)
        await agent.put(ev(6, cid="c2"), key=b"c2", partition=0, wait=False)
        for _ in range(100):  # the batch closes after PERSONA_BATCH_WITHIN_S
            if read(profiles, "c2") is not None:
                break
            await asyncio.sleep(0.05)
    assert read(profiles, "c1")["counts"] == {"product_view": 5}
    assert writes == []  # not before the flush
    await customers.state.flush()
    assert sorted(writes) == ["c1", "c2"]


async def test_changes_wait_in_memory_and_each_key_is_written_once_per_flush(outbox, monkeypatch):
    writes = []
    original = profiles.on_key_set
    monkeypatch.setattr(profiles, "on_key_set", lambda k, v: (writes.append(k), original(k, v)))
    async with customers.process_events.test_context() as agent:
        for i in range(1, 4):  # one batch each
            await agent.put(ev(i), key=b"c1", partition=0)
            for _ in range(100):  # the batch closes after PERSONA_BATCH_WITHIN_S
                if (read(profiles, "c1") or {}).get("counts") == {"product_view": i}:
                    break  # reads see it
                await asyncio.sleep(0.02)
            assert read(profiles, "c1")["counts"] == {"product_view": i}
            assert "c1" not in profiles.data  # the store does not have it yet
    assert await customers.state.flush() == 2  # c1 in both tables
    assert writes == ["c1"]
    assert orjson.loads(profiles.data["c1"])["counts"] == {"product_view": 3}
    assert await customers.state.flush() == 0


async def test_values_are_stored_as_one_orjson_document(outbox):
    """The same bytes go to the store and the changelog; json-codec bytes still read back."""
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
    await customers.state.flush()
    stored = profiles.data["c1"]
    assert isinstance(stored, bytes) and orjson.loads(stored) == read(profiles, "c1")
    profiles.data["c2"] = b'{"counts": {"search": 2}}'  # as Faust's json codec wrote it
    assert read(profiles, "c2") == {"counts": {"search": 2}}
    assert read(profiles, "nobody") is None


async def test_a_batch_is_recorded_as_applied_once_reads_see_it(outbox):
    """``?after=`` reads wait on ``app.consistency.applied``: its position moves only with the overlays."""
    from faust.types import TP

    from app.consistency.applied import applied

    applied.forget([0])
    seen = []
    original = applied.advance

    def advance(acks):  # the state is readable when the position moves
        seen.append(((read(profiles, "c1") or {}).get("counts"), max(a.offset for a in acks)))
        original(acks)

    applied.advance = advance
    try:
        async with customers.process_events.test_context() as agent:
            for i in range(1, 4):
                await agent.put(ev(i), key=b"c1", partition=0, wait=False)
            for _ in range(100):
                if applied.position(0) >= 0 and read(profiles, "c1")["counts"] == {
                        "product_view": 3}:
                    break
                await asyncio.sleep(0.02)
    finally:
        del applied.advance
    last = seen[-1][1]
    assert applied.position(0) == last and seen[-1][0] == {"product_view": 3}
    await app.on_partitions_revoked.send({TP("events", 0), TP("other", 0)})
    assert applied.position(0) == -1  # a partition that comes back starts from its floor


async def test_flushed_values_stay_readable_from_the_read_cache_until_a_rebalance(outbox):
    """After a flush a read is a cache hit (the store is not read again); a rebalance
    (revoked or assigned) drops the cache, and a flush during one does not fill it."""
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(1), key=b"c1", partition=0)
    await customers.state.flush()
    cached = read(profiles, "c1")
    assert cached["counts"] == {"product_view": 1}
    profiles.data["c1"] = b'{"counts": {"search": 9}}'  # only a new owner could do this
    assert read(profiles, "c1") == cached  # served from the cache, the store not read
    await app.on_partitions_revoked.send(set())
    assert read(profiles, "c1") == {"counts": {"search": 9}}  # from the store again
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(2, cid="c2"), key=b"c2", partition=0)
    app.rebalancing = True
    try:
        await customers.state.flush()
    finally:
        app.rebalancing = False
    profiles.data["c2"] = b'{"counts": {"search": 7}}'
    assert read(profiles, "c2") == {"counts": {"search": 7}}  # not kept while rebalancing
    async with customers.process_events.test_context() as agent:
        await agent.put(ev(3, cid="c3"), key=b"c3", partition=0)
    await customers.state.flush()
    assert read(profiles, "c3")["counts"] == {"product_view": 1}
    await app.on_partitions_assigned.send(set())
    profiles.data["c3"] = b'{"counts": {"search": 5}}'
    assert read(profiles, "c3") == {"counts": {"search": 5}}


async def test_a_flush_during_a_rebalance_never_leaves_an_older_value_in_the_read_cache(outbox):
    """A rebalance's flush runs before its signal drops the read cache, and the agent still
    finishes the batches it took meanwhile: a customer flushed before (its older bytes
    cached) and changed since must be read as its newest value once that flush has moved
    it out of the overlays, or its next event is applied to the older one and the events
    between are lost for good (the chaos test caught a cart add lost that way)."""
    async def deliver(i):  # record i of partition 0 (a test context counts from 0)
        async with customers.process_events.test_context() as agent:
            agent.sent_offset = i
            await agent.put(ev(i), key=b"c1", partition=0)

    await deliver(1)
    await customers.state.flush()  # not rebalancing: the cache keeps c1 after 1 event
    await deliver(2)
    app.rebalancing = True
    try:
        await customers.state.flush()  # the store has 2 events; the cache must not say 1
        assert read(profiles, "c1")["counts"] == {"product_view": 2}
        await deliver(3)  # a batch the agent took before the rebalance stopped the flow
        await customers.state.flush()
    finally:
        app.rebalancing = False
    await app.on_partitions_revoked.send(set())
    assert read(profiles, "c1")["counts"] == {"product_view": 3}


async def test_a_redelivery_stamps_a_copy_never_the_shared_document(outbox):
    """The same event again at a later offset (a producer's retry) is rewritten with the
    new position; the document read for it (here the read cache's, shared with cached
    answers) keeps the one it had."""
    for offset in (1, 2):  # the second time: a duplicate by event id, not by position
        async with customers.process_events.test_context() as agent:
            agent.sent_offset = offset
            await agent.put(ev(1), key=b"c1", partition=0)
        if offset == 1:
            await customers.state.flush()
            cached = source(profiles, "c1")
            assert cached[customer_state.POS] == [0, 1]
    rewritten = source(profiles, "c1")
    assert rewritten is not cached and rewritten[customer_state.POS] == [0, 2]
    assert cached[customer_state.POS] == [0, 1]
    assert rewritten["counts"] == cached["counts"] == {"product_view": 1}


def batch_of(n: int, people: int = 0) -> list:
    """``n`` records of partition 0, as the intake hands them: views of one customer each
    (c0, c1, ...), or of ``people`` customers in turn, a view, a cart add, a purchase."""
    topic = customers.events_topic.get_topic_name()
    item = {"product_id": "p1", "quantity": 1, "price": 10.0}
    records = []
    for i in range(n):
        cid = f"c{i % people}" if people else f"c{i}"
        value = (ev(i, cid=cid) if not people or i % 3 == 0 else
                 ev(i, "cart_add", cid=cid, **item) if i % 3 == 1 else
                 ev(i, "purchase", cid=cid, order_id=f"o{i}", total=10.0, currency="EUR",
                    items=[item]))
        records.append(ConsumerRecord(topic, 0, i, T0 + i, 0, cid.encode(), value, None,
                                      0, 0, ()))
    return records


async def test_kpi_rows_folded_in_steps_are_the_rows_folded_at_once(outbox, monkeypatch):
    rows = []
    for step in (1000, 1):
        customers.state.forget()
        for table in (sessions, profiles, *customers.kpi_rows.tables.values()):
            table.data.clear()
        monkeypatch.setattr(customers, "KPI_STEP", step)
        await customers.process_batch(batch_of(30, people=4), [],
                                      customers.settings.session_idle_ms)
        rows.append(dict(customers.kpi_rows.newest))
    assert not outbox["dlq"].await_count  # every event valid
    assert rows[0] and rows[0] == rows[1]
    assert all(row["orders"] and row["carts_opened"] for row in rows[0].values()), rows[0]


async def test_a_flush_while_a_batch_goes_in_takes_all_of_it_or_none(outbox, monkeypatch):
    """The agent hands the loop to reads while a batch's states go in; a flush due then
    waits, so it never writes part of a batch (whose KPI rows are in already)."""
    monkeypatch.setattr(customers, "PUT_STEP", 1)
    put, flushes = customers.state.put, []

    def put_then_flush(key, values, record):
        put(key, values, record)
        if not flushes:  # starts at the agent's next step, after this one state
            flushes.append(asyncio.ensure_future(customers.state.flush()))

    monkeypatch.setattr(customers.state, "put", put_then_flush)
    await customers.process_batch(batch_of(3), [], customers.settings.session_idle_ms)
    assert await flushes[0] == 6  # both tables of all three customers
    assert customers.state.last_event == {}
    for i in range(3):
        assert read(profiles, f"c{i}")["counts"] == {"product_view": 1}


async def test_a_cancelled_batch_still_enters_all_its_states(outbox, monkeypatch):
    """A worker stopping mid-batch: the cancellation waits until every state of the batch
    is in, so its KPI rows and states stay whole."""
    monkeypatch.setattr(customers, "PUT_STEP", 1)
    put, task = customers.state.put, []

    def put_then_cancel(key, values, record):
        put(key, values, record)
        task[0].cancel()

    monkeypatch.setattr(customers.state, "put", put_then_cancel)
    task.append(asyncio.ensure_future(
        customers.process_batch(batch_of(3), [], customers.settings.session_idle_ms)))
    with pytest.raises(asyncio.CancelledError):
        await task[0]
    assert set(customers.state.last_event) == {"c0", "c1", "c2"}
    assert customers.state.settled.is_set()
