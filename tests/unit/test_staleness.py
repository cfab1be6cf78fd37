"""The bounded-staleness rule (``app.rules.staleness``): a worker vouches for its partitions
only while its last accepted group heartbeat is at most the bound old."""
from __future__ import annotations

import pytest

from app.rules.staleness import contact_age, may_write, vouched, write_lease


@pytest.mark.parametrize("last, now, ok", [
    (None, 100.0, False),      # never a member: nothing to vouch for
    (100.0, 100.0, True),
    (90.0, 100.0, True),       # exactly the bound: still inside
    (89.99, 100.0, False),     # past the bound
    (50.0, 100.0, False),
])
def test_vouched_only_within_the_bound(last, now, ok):
    assert vouched(last, now, 10.0) is ok


def test_the_bound_moves_the_cut():
    assert vouched(80.0, 100.0, 30.0) and not vouched(80.0, 100.0, 19.0)


def test_contact_age():
    assert contact_age(None, 5.0) is None
    assert contact_age(1.0, 13.26) == 12.3
    assert contact_age(5.0, 4.0) == 0.0  # never negative


@pytest.mark.parametrize("bound", [6.0, 10.0, 30.0])
def test_a_record_handed_over_within_the_lease_arrives_before_the_group_can_move_on(bound):
    """Lease + a batch's wait, a connect, a request, and the kernel's unacknowledged bytes
    end a tenth of the bound before the coordinator may drop the worker."""
    lease = write_lease(bound)
    assert lease.latest_arrival_s() == pytest.approx(0.9 * bound)
    assert lease.lease_s == bound / 2 and lease.request_s == lease.unacked_s == bound / 10


@pytest.mark.parametrize("last, now, ok", [
    (None, 100.0, False),
    (95.0, 100.0, True),      # half the bound: the last moment a record may be handed over
    (94.9, 100.0, False),     # still vouched for reads, no longer for writes
])
def test_may_write_only_within_half_the_bound(last, now, ok):
    assert may_write(last, now, 10.0) is ok
    assert last is None or vouched(last, now, 10.0)  # reads are still served meanwhile
