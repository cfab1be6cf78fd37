"""``tables.documents.ReadCache``: the last ``bound`` keys a flush wrote, newest kept."""
from __future__ import annotations

from tables.documents import ReadCache


def test_keeps_the_most_recently_flushed_keys_up_to_the_bound():
    cache = ReadCache(3)
    cache.keep({"a": b"{\"n\":1}", "b": b"{\"n\":1}"})
    cache.keep({"c": b"{\"n\":1}", "a": b"{\"n\":2}"})  # a written again: now the newest
    assert list(cache) == ["b", "c", "a"] and cache["a"] == b"{\"n\":2}"
    cache.keep({"d": None})  # a deleted key is cached as None (the store has a tombstone)
    assert list(cache) == ["c", "a", "d"] and cache["d"] is None


def test_a_flush_larger_than_the_bound_keeps_its_last_keys():
    cache = ReadCache(2)
    cache.keep({k: k.encode() for k in "wxyz"})
    assert list(cache) == ["y", "z"]


def test_bound_zero_keeps_nothing():
    cache = ReadCache(0)
    cache.keep({"a": b"{\"n\":1}"})
    assert not cache
