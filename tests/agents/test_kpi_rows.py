"""The windowed KPI rows of the customers agent (``agents/kpis.py``) under Faust's test
context: they equal the pure oracle, are written before the customer documents, and a
replay after a crash at any point of a flush counts every event exactly once."""
from __future__ import annotations

import asyncio

import orjson
import pytest

import agents.customers as customers
from app.main import app
from app.rules import window_kpis as wk
from tables.documents import read
from tables.kpis import kpi_tables, local_rows, parse_key
from tables.profiles import profiles
from tables.sessions import sessions
from tests.agents.test_customers import T0
from tests.support.expected import kpi_applied

RAW = [
    {"type": "product_view", "customer_id": "c1", "product_id": "p1", "ts": T0},
    {"type": "cart_add", "customer_id": "c1", "product_id": "p1", "price": 9.99, "ts": T0 + 1000},
    {"type": "cart_add", "customer_id": "c2", "product_id": "p2", "price": 5.0, "ts": T0 + 2000},
    {"type": "purchase", "customer_id": "c1", "order_id": "o1", "total": 9.99, "currency": "EUR",
     "items": [{"product_id": "p1", "quantity": 1, "price": 9.99}], "ts": T0 + 61_000},
    {"type": "product_view", "customer_id": "c2", "product_id": "p3", "ts": T0 + 3 * 3600_000},
]
EVENTS = [{"event_id": f"k{i}", **e} for i, e in enumerate(RAW)]


def expected(window: str) -> dict:
    return wk.fold_rows(kpi_applied(EVENTS, idle_ms=customers.settings.session_idle_ms), window)


def stored(window: str) -> dict:
    rows, _ = local_rows(window, {0}, 0, 2**62)
    return {key: {k: v for k, v in row.items() if k != "_pos"} for key, row in rows.items()}


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.setattr(customers, "partition_of", lambda topic, key: 0)
    for table in (sessions, profiles, *kpi_tables.values()):
        table.data.clear()
    customers.state.forget()
    yield


async def deliver(events=EVENTS):
    """The records from offset 0, as a (re)start of the partition delivers them; returns
    once the agent has folded the last one into the KPI rows."""
    customers.kpi_rows.events.clear()
    async with customers.process_events.test_context() as agent:
        for e in events:
            await agent.put(orjson.dumps(e), key=e["customer_id"].encode(), partition=0,
                            wait=False)
        for _ in range(300):
            last = customers.kpi_rows.events.get(0)
            if last is not None and last.offset == len(events) - 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the agent never took the last event")


async def test_rows_equal_the_oracle_and_reads_see_them_before_the_flush(clean):
    await deliver()
    for window in wk.WINDOWS:
        assert stored(window) == expected(window)  # from the overlay
    assert not list(kpi_tables["1m"].data.keys())
    await customers.state.flush()
    assert not customers.kpi_rows.newest and not customers.kpi_rows.flushing
    for window in wk.WINDOWS:
        assert stored(window) == expected(window)  # from the store
    summary = wk.summary(wk.merge(expected("1d").values()))
    assert summary["orders"] == 1 and summary["carts_opened"] == 2
    assert summary["active_customers"] == 2 and summary["events"] == 5


async def test_a_full_replay_after_a_flush_counts_nothing_twice(clean):
    await deliver()
    await customers.state.flush()
    await deliver()  # offsets from 0 again: everything is a redelivery
    await customers.state.flush()
    for window in wk.WINDOWS:
        assert stored(window) == expected(window)
    assert read(profiles, "c1")["orders"] == 1


async def test_crash_after_the_kpi_rows_before_the_documents(clean):
    """The flush wrote the KPI rows, then the worker died: the documents are still the old
    ones, so the replay recomputes every contribution; the rows' ``_pos`` drops them."""
    await deliver()
    await customers.kpi_rows.write(app, *customers.kpi_rows.take())
    customers.state.forget()  # the documents were never written
    assert read(profiles, "c1") is None
    await deliver()
    await customers.state.flush()
    for window in wk.WINDOWS:
        assert stored(window) == expected(window)
    assert read(profiles, "c1")["orders"] == 1 and read(sessions, "c2")["events"] == 1


async def test_crash_before_anything_was_written(clean):
    await deliver()
    customers.state.forget()
    await deliver()
    await customers.state.flush()
    for window in wk.WINDOWS:
        assert stored(window) == expected(window)


async def test_expired_rows_are_swept_in_event_time(clean, monkeypatch):
    old = {"event_id": "old", "type": "product_view", "customer_id": "c3", "product_id": "p",
           "ts": T0 - 3 * wk.DAY_MS}
    monkeypatch.setattr(customers.kpi_rows, "last_sweep", -1e9)  # sweep at this flush
    await deliver([old])
    await customers.state.flush()
    monkeypatch.setattr(customers.kpi_rows, "last_sweep", -1e9)
    await deliver([old] + EVENTS)
    await customers.state.flush()
    old_start = wk.window_start(old["ts"], wk.MINUTE_MS)
    assert old_start not in {start for _, start in stored("1m")}
    stored_starts = {parse_key(key)[1] for key in kpi_tables["1m"].data.keys()}
    assert old_start not in stored_starts and stored_starts  # 3 days older: deleted
    assert len(stored("1d")) == len(expected("1d")) + 1  # 1-day windows keep 90 days


async def test_an_event_dated_years_ahead_expires_nothing(clean, monkeypatch):
    future = {"event_id": "future", "type": "product_view", "customer_id": "c4",
              "product_id": "p", "ts": 32_000_000_000_000}  # year 2984: valid, but no clock's
    monkeypatch.setattr(customers.kpi_rows, "last_sweep", -1e9)
    await deliver(EVENTS + [future])
    await customers.state.flush()
    got = stored("1m")
    assert {k: v for k, v in got.items() if k[1] != wk.window_start(future["ts"], wk.MINUTE_MS)
            } == expected("1m")  # history kept
    assert len(got) == len(expected("1m")) + 1  # and the odd row itself
    assert local_rows("1m", {0}, 0, 2**62)[1][0] < future["ts"]  # not followed as newest
