"""app.webhooks.erasure: which deliveries an erase marker cancels (by position), and how
markers merge (never moving back). Pure: no broker, no clock."""
from __future__ import annotations

import random

import orjson
from hypothesis import given
from hypothesis import strategies as st

from app.webhooks import erasure, formats

T0 = 1_700_000_000_000


def request(source=None, created_at=T0, cid="c1") -> dict:
    record = {"webhook_id": "msg_1", "subscription_id": "crm", "kind": "cart.updated",
              "customer_id": cid, "created_at": created_at, "attempts": 0, "data": {}}
    if source is not None:
        record["source"] = source
    return record


def test_marker_holds_the_erase_position_and_time():
    assert erasure.marker("c1", 2, 40, T0) == {"customer_id": "c1", "pos": [2, 40],
                                               "erased_at": T0}


def test_cancels_requests_created_before_the_erase_by_position():
    mark = erasure.marker("c1", 2, 40, T0)
    assert erasure.cancels(mark, request([2, 39]))
    assert erasure.cancels(mark, request([2, 0], created_at=T0 + 60_000))  # replayed later
    assert not erasure.cancels(mark, request([2, 41], created_at=T0 - 60_000))  # came back
    assert not erasure.cancels(None, request([2, 1]))


def test_requests_without_a_comparable_position_fall_back_to_times():
    mark = erasure.marker("c1", 2, 40, T0)
    assert erasure.cancels(mark, request(None, created_at=T0))
    assert not erasure.cancels(mark, request(None, created_at=T0 + 1))
    assert erasure.cancels(mark, request([5, 99], created_at=T0 - 1))  # other partition
    assert not erasure.cancels(mark, request([5, 1], created_at=T0 + 1))
    no_time = request(None)
    del no_time["created_at"]
    assert erasure.cancels(mark, no_time)  # unknown: never sent


def test_a_redriven_dlq_entry_keeps_its_source_and_is_cancelled():
    record = request([1, 7], created_at=T0)
    entry = orjson.loads(formats.dlq_entry(record, "HTTP 500", 500, 6, T0 + 10))
    again = formats.redriven(entry, T0 + 99_000)
    assert again["source"] == [1, 7]
    assert erasure.cancels(erasure.marker("c1", 1, 8, T0 + 50_000), again)
    assert not erasure.cancels(erasure.marker("c1", 1, 5, T0 + 50_000), again)


def test_merged_keeps_the_later_erase_and_never_moves_back():
    first, second = erasure.marker("c1", 2, 40, T0), erasure.marker("c1", 2, 90, T0 + 5)
    assert erasure.merged(None, first) == first
    assert erasure.merged(first, second) == second
    assert erasure.merged(second, first) == second  # an older erase redelivered after a crash
    again = erasure.marker("c1", 2, 40, T0 + 999)  # the same erase applied again
    assert erasure.merged(first, again)["erased_at"] == T0


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=20),
       st.randoms())
def test_merge_is_order_independent(offsets, rnd: random.Random):
    marks = [erasure.marker("c1", 3, o, T0 + o) for o in offsets]
    rnd.shuffle(marks)
    kept = None
    for m in marks:
        kept = erasure.merged(kept, m)
    assert kept["pos"] == [3, max(offsets)] and kept["erased_at"] == T0 + max(offsets)
