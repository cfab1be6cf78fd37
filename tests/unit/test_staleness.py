"""The bounded-staleness rule (``app.rules.staleness``): a worker vouches for its partitions
only while its last accepted group heartbeat is at most the bound old."""
from __future__ import annotations

import pytest

from app.rules.staleness import contact_age, vouched


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
