"""When the write-back flushes which partitions (``agents.flush_schedule``), what a flush
of some partitions takes from the write-back (``agents.writeback.WriteBack.take``), and what
a flush the write lease fenced leaves behind."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from agents import flush_write, writeback
from agents.flush_schedule import ALL, IDLE_S, STALL_S, FlushSchedule
from agents.writeback import KEEP, WriteBack
from app.kafka import fenced
from app.observability import metrics

TICK = 0.05  # the flush task's check period (agents.customers.FLUSH_TICK_S)


def run(schedule: FlushSchedule, start: float, seconds: float, partitions=range(8)):
    """A batch of every partition and a check every TICK; returns [(time, due)]."""
    flushes, now = [], start
    while now < start + seconds:
        schedule.changed(partitions, now)
        due = schedule.due(now)
        if due is ALL or due:
            flushes.append((round(now - start, 2), due))
            schedule.flushing(due, now)
        now += TICK
    return flushes


def test_nothing_waiting_is_never_due():
    schedule = FlushSchedule(10.0)
    assert schedule.due(1000.0, urgent=True) == []


def test_a_steady_stream_spreads_the_partitions_flushes_over_the_interval():
    schedule = FlushSchedule(8.0)
    flushes = run(schedule, 1000.0, 40.0)
    assert all(due is not ALL and len(due) == 1 for _, due in flushes)
    first_round = [t for t, _ in flushes[:8]]
    # all changed at once: the first round starts at the interval, one per interval / 8
    assert 8.0 <= first_round[0] <= 8.0 + TICK and first_round[-1] <= 16.0 + TICK
    later = flushes[8:]
    gaps = [b - a for (a, _), (b, _) in zip(later, later[1:], strict=False)]
    assert min(gaps) >= 1.0 - 1e-9 and max(gaps) <= 1.0 + TICK + 1e-9  # evenly spread
    by_partition: dict = {}
    for t, (p,) in flushes:
        by_partition.setdefault(p, []).append(t)
    assert sorted(by_partition) == list(range(8))
    for times in by_partition.values():  # each partition once per interval, never later
        assert all(8.0 - TICK <= b - a <= 16.0 + TICK for a, b in zip(times, times[1:], strict=False))


def test_a_partition_flushes_once_its_oldest_change_is_interval_old():
    schedule = FlushSchedule(10.0)
    schedule.changed([3], 1000.0)
    schedule.changed([3], 1009.9)  # later changes do not move the oldest one
    assert schedule.due(1009.95) == []
    assert schedule.due(1010.0) == [3]


def test_a_partition_waiting_twice_the_interval_flushes_at_once():
    schedule = FlushSchedule(10.0)
    schedule.changed(range(8), 1000.0)
    for t in range(1000, 1020):
        schedule.changed(range(8), t)
        schedule.due(t)
    schedule.flushing([0], 1019.9)  # a flush just started: the spacing is not over
    assert sorted(schedule.due(1020.0)) == [1, 2, 3, 4, 5, 6, 7]


def test_quiet_input_flushes_everything_after_idle_s():
    schedule = FlushSchedule(10.0)
    schedule.changed([1, 2], 1000.0)
    for i in range(1, 10):  # checked on time, no batch
        now = 1000.0 + i * IDLE_S / 10
        assert schedule.due(now) == []
    assert schedule.due(1000.0 + IDLE_S) is ALL


def test_a_stalled_loop_is_not_quiet_input():
    schedule = FlushSchedule(10.0)
    schedule.changed([1], 1000.0)
    assert schedule.due(1000.1) == []
    # a 0.6 s garbage collection: no check and no batch could run meanwhile
    assert schedule.due(1000.7) == []
    # quiet: 0.1 s before the stall, then the time since it, checked on time
    now, answers = 1000.7, []
    while now < 1001.3:
        now += TICK
        answers.append((round(now, 2), schedule.due(now)))
    assert [t for t, due in answers if due is ALL][0] == pytest.approx(1000.7 + IDLE_S - 0.1, abs=TICK)
    assert STALL_S < IDLE_S


def test_urgent_flushes_everything():
    schedule = FlushSchedule(10.0)
    schedule.changed([1], 1000.0)
    assert schedule.due(1000.01) == []
    assert schedule.due(1000.02, urgent=True) is ALL


def message(partition, offset=0):
    """A record and the ack of it (app.kafka.intake): what the write-back reads of both."""
    return SimpleNamespace(partition=partition, offset=offset)


@pytest.fixture
def wb():
    app = SimpleNamespace(rebalancing=False, should_stop=False)
    tables = (SimpleNamespace(name="wb-take-a"), SimpleNamespace(name="wb-take-b"))
    w = WriteBack(app, tables, 10.0, 3)
    yield app, w
    w.forget()


def test_a_flush_of_some_partitions_takes_only_their_customers_and_events(wb):
    app, w = wb
    e0, e1 = message(0, 5), message(1, 7)
    w.put("c0", ({"n": 0}, None), e0)
    w.put("c1", ({"n": 1}, KEEP), e1)
    w.add_events([e0, e1], {0: [1.0], 1: [2.0]})
    events, held, stamps = w.take([1])
    assert events == {"c1": e1} and held == [e1] and stamps == [2.0]
    (newest_a, flushing_a), (newest_b, flushing_b) = w.layers
    assert flushing_a == {"c1": {"n": 1}} and not flushing_b  # KEEP: nothing to write
    assert newest_a == {"c0": {"n": 0}} and newest_b == {"c0": None}
    assert w.last_event == {"c0": e0} and list(w.held) == [0]
    assert w.schedule.since.keys() == {0, 1}  # the schedule is told by flush(), not take()
    events, held, stamps = w.take(ALL)
    assert events == {"c0": e0} and held == [e0] and stamps == [1.0]
    assert not newest_a and not newest_b and not w.held


def test_key_bound_rebalance_and_stop_flush_everything(wb):
    app, w = wb
    w.put("c1", ({"n": 1}, KEEP), message(0))
    w.add_events([message(0)])
    assert w.due() == []
    app.rebalancing = True
    assert w.due() is ALL
    app.rebalancing, app.should_stop = False, True
    assert w.due() is ALL
    app.should_stop = False
    w.put("c2", ({"n": 1}, KEEP), message(1))
    w.put("c3", ({"n": 1}, KEEP), message(1))
    assert w.full() and w.due() is ALL


@pytest.mark.parametrize("fenced_at", ["lease", "send"])
async def test_a_fenced_flush_drops_every_unwritten_value_and_forgets_the_held_events_unacked(
        wb, monkeypatch, fenced_at):
    """Fenced before anything was taken (no lease) or while sending (the lease ended): either
    way nothing more is written, every held message goes to ``abandon`` (not ``release``:
    no offset of theirs may be committed) and the overlays are empty."""
    app, w = wb
    abandoned, released = [], []
    monkeypatch.setattr(writeback, "abandon", lambda app_, messages: abandoned.extend(messages))
    monkeypatch.setattr(writeback, "release", lambda app_, messages: released.extend(messages))
    monkeypatch.setattr(WriteBack, "bulk", lambda self: True)

    async def no_lease(app_):
        if fenced_at == "lease":
            raise fenced.Fenced("no group contact for 9.0 s (write lease 5.0 s)")

    async def cut_off(self, events):
        raise fenced.Fenced("no group contact for 5.5 s (write lease 5.0 s)")

    monkeypatch.setattr(fenced, "wait_lease", no_lease)
    monkeypatch.setattr(WriteBack, "write_bulk", cut_off)
    e0, e1 = message(0, 5), message(1, 7)
    w.put("c0", ({"n": 0}, None), e0)
    w.put("c1", ({"n": 1}, KEEP), e1)
    w.add_events([e0, e1])
    before = metrics.ABANDONED._value.get()
    assert await w.flush([1]) == 0
    assert sorted(ack.offset for ack in abandoned) == [5, 7] and released == []
    assert all(not newest and not flushing for newest, flushing in w.layers)
    assert not w.held and not w.last_event and w.due() == []
    assert metrics.ABANDONED._value.get() == before + 2


async def test_a_bulk_flush_writes_in_steps_that_reads_may_run_between_and_the_agent_may_not(
        wb, monkeypatch):
    """Encoding and the store writes of a bulk flush hand the loop over every ``STEP_KEYS``
    keys. Reads then still find every value being flushed in the overlays; the agent, at
    its ``pause``, goes on only once the stores have them all (its next versions may be
    built from the documents being encoded)."""
    import asyncio

    app, w = wb
    monkeypatch.setattr(flush_write, "STEP_KEYS", 2)
    stored: list = []  # (table name, keys) per store write

    def put_local(table, items):
        stored.append((table.name, [key for key, _, _ in items]))
        return [(key.encode(), raw, partition) for key, raw, partition in items]

    async def send_changelog(app_, table, records):
        return {}

    monkeypatch.setattr(flush_write.fastpath, "put_local", put_local)
    monkeypatch.setattr(flush_write.fastpath, "send_changelog", send_changelog)
    events = {}
    for n in range(5):
        events[f"c{n}"] = message(0, n)
        w.put(f"c{n}", ({"n": n}, {"m": n}), events[f"c{n}"])
    taken, _, _ = w.take(ALL)
    seen_by_reads: list = []  # (store writes so far, values a read finds in the overlays)
    agent_went_on: list = []

    async def reads():
        for _ in range(50):
            flushing = w.layers[0][1]
            seen_by_reads.append((len(stored), sorted(flushing)))
            await asyncio.sleep(0)

    async def agent():
        await asyncio.sleep(0)  # the flush has started
        await w.pause()
        agent_went_on.append((len(stored), dict(w.layers[0][1])))

    written, *_ = await asyncio.gather(w.write_bulk(taken), reads(), agent())
    assert written == 10
    assert stored == [("wb-take-a", ["c0", "c1"]), ("wb-take-a", ["c2", "c3"]),
                      ("wb-take-a", ["c4"]), ("wb-take-b", ["c0", "c1"]),
                      ("wb-take-b", ["c2", "c3"]), ("wb-take-b", ["c4"])]
    during = [keys for writes, keys in seen_by_reads if 0 < writes < len(stored)]
    assert during and all(keys == [f"c{n}" for n in range(5)] for keys in during)
    assert agent_went_on == [(6, {})]  # after every store write and the overlays' retire
    assert w.open.is_set()


async def test_flushed_documents_are_freed_a_step_at_a_time_after_the_overlays_let_go(
        wb, monkeypatch):
    """``retire`` moves the flushed documents from the overlays (both tables) into the read
    cache and keeps what that displaces (the versions flushed before) for ``free_retired``,
    which drops ``RELEASE_STEP`` of them per turn of the loop: freeing a whole flush's
    documents in one go held the loop for 100-200 ms. Not cached during a rebalance: then the
    flushed documents themselves are freed that way."""
    import asyncio
    import weakref

    app, w = wb
    monkeypatch.setattr(flush_write, "RELEASE_STEP", 2)

    class Doc(dict):  # a dict that a weak reference can watch
        pass

    def flush(version):
        docs = [Doc(n=n, v=version) for n in range(5)]
        for n, doc in enumerate(docs):
            w.put(f"c{n}", (doc, KEEP), message(0, n))
        w.take(ALL)
        w.retire([[(f"c{n}", b"{}", 0) for n in range(5)], []])
        assert all(not newest and not flushing for newest, flushing in w.layers)
        return [weakref.ref(d) for d in docs]

    async def freed_per_turn(alive):
        counts: list = []

        async def watch():
            for _ in range(6):
                counts.append(sum(ref() is not None for ref in alive))
                await asyncio.sleep(0)

        await asyncio.gather(w.free_retired(), watch())
        return counts

    first = flush(1)
    assert await freed_per_turn(first) == [5] * 6  # in the read cache, not freed
    second = flush(2)  # displaces the first versions from the cache
    assert sum(ref() is not None for ref in first) == 5  # nothing freed inside retire
    assert (await freed_per_turn(first))[:3] == [3, 1, 0]  # two per turn of the loop
    assert all(ref() is not None for ref in second) and w.retired == []
    app.rebalancing = True
    third = flush(3)  # not cached; the second versions leave the cache too
    assert sum(ref() is not None for ref in second + third) == 10
    assert await freed_per_turn(second + third) == [8, 6, 5, 3, 1, 0]  # a list at a time
    assert w.retired == [] and not w.caches[0]
