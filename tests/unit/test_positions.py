"""Read-your-writes tokens (``app.consistency.positions``) and the wait for a position (``app.consistency.applied``)."""
from __future__ import annotations

import asyncio
import base64
import time
from types import SimpleNamespace

import orjson
import pytest

from app.consistency.applied import NONE, Applied
from app.consistency.positions import BadToken, decode, encode, merge


def test_a_token_round_trips_and_is_url_safe_and_versioned():
    token = encode({7: 88, 3: 1041})
    assert token.startswith("v1.") and decode(token) == {3: 1041, 7: 88}
    assert all(c.isalnum() or c in "-_." for c in token)
    big = encode({0: 2 ** 63 - 1, 65535: 0})
    assert decode(big) == {0: 2 ** 63 - 1, 65535: 0}
    with pytest.raises(ValueError):
        encode({})


def _v1(payload) -> str:
    return "v1." + base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


@pytest.mark.parametrize("token", [
    "", "v1.", "v2." + encode({1: 2})[3:], encode({1: 2})[3:], "v1.!!!!", "v1.W1sxLDJdXQ==",
    "v1.W1sx+DJdXQ", "v1." + "A" * 5000, "v1.bm90IGpzb24", _v1([]), _v1({"1": 2}), _v1([[1]]),
    _v1([[1, 2, 3]]), _v1([[-1, 2]]), _v1([[1, -2]]), _v1([[1, 2.0]]), _v1([[True, 2]]),
    _v1([[1, "2"]]), _v1([[1, 2], [1, 3]]), _v1([[1, 2 ** 63]]), _v1([[2 ** 31, 1]]),
    _v1([[1, 2]] * 2000), _v1(None), _v1(5)])
def test_garbage_is_refused(token):
    with pytest.raises(BadToken):
        decode(token)


def test_merge_keeps_the_latest_offset_per_partition():
    assert decode(merge(encode({1: 5, 2: 9}), None, encode({1: 7, 3: 0}))) == {1: 7, 2: 9, 3: 0}
    assert merge(None) is None and merge() is None
    with pytest.raises(BadToken):
        merge("nonsense")


def batch(*positions):
    """A batch's acks (app.kafka.intake): a partition and the highest offset each answers for."""
    return [SimpleNamespace(partition=p, offset=o) for p, o in positions]


def test_advance_records_the_highest_offset_per_partition_and_never_moves_back():
    a = Applied()
    assert a.position(0) == NONE
    a.advance(batch((0, 5), (1, 2), (0, 7), (0, 6)))
    assert (a.position(0), a.position(1), a.position(2)) == (7, 2, NONE)
    a.advance(batch((0, 3)))  # a redelivery after a rebalance of this worker
    assert a.position(0) == 7
    assert a.position(0, floor=9) == 9 and a.position(2, floor=4) == 4
    a.forget([0])
    assert a.position(0) == NONE and a.position(1) == 2


def test_a_taken_over_partition_is_caught_up_once_applied_to_its_first_high_water():
    """The previous owner may have served states it never flushed: the new owner serves
    once it has applied what existed at its first fetch, not before, and then for good."""
    a = Applied()
    assert not a.caught_up(0, floor=99, highwater=None)  # no fetch answered yet
    assert not a.caught_up(0, floor=99, highwater=120)  # restored to 99; events to 119 exist
    a.advance(batch((0, 110)))
    assert not a.caught_up(0, floor=99, highwater=150)  # the target stays 119
    a.advance(batch((0, 119)))
    assert a.caught_up(0, floor=99, highwater=400)  # caught up: the stream moving on
    a.advance(batch((0, 120)))
    assert a.caught_up(0, floor=99, highwater=None)  # ... does not take it back
    assert a.caught_up(1, floor=49, highwater=50)  # nothing to re-apply: at once
    a.forget([0])  # revoked: a later assignment starts over
    assert not a.caught_up(0, floor=130, highwater=200)
    assert a.caught_up(0, floor=199, highwater=200)


async def test_wait_returns_at_once_when_applied_or_below_the_floor():
    a = Applied()
    a.advance(batch((0, 10)))
    assert await a.wait(0, 10, 5.0) == (True, 10)
    # a worker that just got partition 3: committed offset 21 -> 0..20 are in its tables
    assert await a.wait(3, 20, 5.0, floor=lambda: 20) == (True, 20)
    assert a.events == {}  # no waiter was created


async def test_wait_wakes_on_the_batch_that_reaches_the_offset_without_polling():
    a = Applied()
    floors = []
    waiter = asyncio.ensure_future(a.wait(1, 50, 5.0, floor=lambda: floors.append(1)))
    await asyncio.sleep(0.01)
    assert not waiter.done() and len(floors) == 1  # asked once, then sleeping on the event
    a.advance(batch((2, 99)))  # another partition: does not wake this one
    await asyncio.sleep(0.01)
    assert len(floors) == 1
    a.advance(batch((1, 49)))  # not far enough: wakes, re-checks, sleeps again
    await asyncio.sleep(0.01)
    assert not waiter.done() and len(floors) == 2
    a.advance(batch((1, 40), (1, 51)))
    assert await asyncio.wait_for(waiter, 1) == (True, 51)


async def test_wait_gives_up_after_the_timeout_saying_how_far_it_got():
    a = Applied()
    a.advance(batch((0, 3)))
    started = time.monotonic()
    assert await a.wait(0, 4, 0.1) == (False, 3)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert await a.wait(5, 0, 0.0) == (False, NONE)  # wait_ms=0: one check


async def test_many_waiters_of_one_partition_all_wake():
    a = Applied()
    waiters = [asyncio.ensure_future(a.wait(0, o, 5.0)) for o in (1, 2, 3)]
    await asyncio.sleep(0.01)
    a.advance(batch((0, 2)))
    await asyncio.sleep(0.01)
    assert [w.done() for w in waiters] == [True, True, False]
    a.forget([0])  # revoked: the last waiter re-checks and keeps waiting for its floor
    a.advance(batch((0, 3)))
    assert [w.result() for w in await asyncio.gather(*waiters) and waiters] == [
        (True, 2), (True, 2), (True, 3)]
