"""When the write-back flushes (``agents.writeback.WriteBack.due``): the interval from the
oldest unflushed change, the key bound, a rebalance or stop, and quiet input (``IDLE_S``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from agents import writeback
from agents.writeback import WriteBack


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(writeback.time, "monotonic", c)
    monkeypatch.setattr(writeback, "hold", lambda events: None)
    return c


def make(interval_s=10.0, max_keys=3):
    app = SimpleNamespace(rebalancing=False, should_stop=False)
    table = SimpleNamespace(name="wb-due-test")
    return app, WriteBack(app, (table,), interval_s, max_keys)


def test_nothing_waiting_is_never_due(clock):
    app, wb = make()
    app.rebalancing = app.should_stop = True
    assert not wb.due()


def test_a_steady_stream_waits_for_the_interval(clock):
    app, wb = make(interval_s=10.0)
    for _ in range(40):  # a batch every 0.25 s: never idle for IDLE_S
        wb.put("c1", ({"n": 1},), SimpleNamespace())
        wb.add_events([])
        assert not wb.due()
        clock.now += 0.25
    wb.add_events([])
    assert clock.now - 1000.0 >= 10.0 and wb.due()


def test_quiet_input_flushes_after_idle_s(clock):
    app, wb = make(interval_s=10.0)
    wb.put("c1", ({"n": 1},), SimpleNamespace())
    wb.add_events([])
    clock.now += writeback.IDLE_S * 0.9
    assert not wb.due()
    clock.now += writeback.IDLE_S * 0.2
    assert wb.due()


def test_key_bound_rebalance_and_stop_flush_at_once(clock):
    app, wb = make(max_keys=2)
    wb.put("c1", ({"n": 1},), SimpleNamespace())
    wb.add_events([])
    assert not wb.due()
    app.rebalancing = True
    assert wb.due()
    app.rebalancing, app.should_stop = False, True
    assert wb.due()
    app.should_stop = False
    wb.put("c2", ({"n": 1},), SimpleNamespace())
    assert wb.full() and wb.due()
