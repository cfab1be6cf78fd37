"""HyperLogLog (``app.rules.hll``): idempotent, order independent, merges as a union, and
close to the exact count (linear counting is nearly exact at the sizes tested here)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.rules import hll
from tests.unit.test_properties import SETTINGS

IDS = st.lists(st.text(min_size=1, max_size=12), max_size=60)


def sketch_of(ids) -> dict:
    s: dict = {}
    for i in ids:
        s = hll.add(s, i)
    return s


@SETTINGS
@given(IDS, IDS, st.randoms(use_true_random=False))
def test_idempotent_order_independent_and_merge_is_union(a, b, rnd):
    shuffled = a + a
    rnd.shuffle(shuffled)
    assert sketch_of(shuffled) == sketch_of(a)
    merged = sketch_of(a)
    hll.merge(merged, sketch_of(b))
    assert merged == sketch_of(a + b)
    assert hll.estimate(sketch_of(a)) == (len(set(a)) if len(set(a)) <= 1 else
                                          hll.estimate(sketch_of(sorted(set(a)))))


def test_estimates_are_close_to_exact():
    assert hll.estimate({}) == 0
    for n in (1, 10, 100, 1_000, 10_000, 50_000):
        got = hll.estimate(sketch_of(f"customer-{i}" for i in range(n)))
        assert abs(got - n) <= max(1, 0.02 * n), (n, got)


def test_register_is_stable():
    """The same id maps to the same register in every process (BLAKE2b, not hash())."""
    assert hll.register("otto-0") == hll.register("otto-0")
    index, rank = hll.register("otto-0")
    assert 0 <= int(index) < hll.M and 1 <= rank <= 64 - hll.P + 1
