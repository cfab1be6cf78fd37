"""``tables.documents.ReadCache``: the last ``bound`` keys a flush wrote, newest kept."""
from __future__ import annotations

from tables.documents import ReadCache


def test_keeps_the_most_recently_flushed_keys_up_to_the_bound():
    cache = ReadCache(3)
    a1, a2 = {"n": 1}, {"n": 2}
    assert cache.keep({"a": a1, "b": {"n": 1}}) == []
    gone = cache.keep({"c": {"n": 1}, "a": a2})  # a written again: now the newest
    assert list(cache) == ["b", "c", "a"] and cache["a"] is a2
    assert len(gone) == 1 and gone[0] is a1  # the older version, for the caller to free
    cache.keep({"d": None})  # a deleted key is cached as None (the store has a tombstone)
    assert list(cache) == ["c", "a", "d"] and cache["d"] is None


def test_a_flush_larger_than_the_bound_keeps_its_last_keys():
    cache = ReadCache(2)
    docs = {k: {"k": k} for k in "wxyz"}
    gone = cache.keep(docs)
    assert list(cache) == ["y", "z"] and gone == [docs["w"], docs["x"]]


def test_bound_zero_keeps_nothing_and_hands_back_every_document():
    cache = ReadCache(0)
    doc = {"n": 1}
    assert cache.keep({"a": doc, "b": None}) == [doc, None]
    assert not cache
