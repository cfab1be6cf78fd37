"""How Persona's tables hold values: one JSON document per customer, as orjson bytes.

The tables use Faust's ``raw`` value serializer and the agents encode each new state
once with orjson: the same bytes go to RocksDB and to the changelog. Faust's default
``json`` codec would encode every write twice (store + changelog) with the stdlib
encoder. The bytes are plain JSON, so stores and changelogs written with the ``json``
codec read back unchanged.

The customers agent writes back (``agents/writeback.py``): a decided state stays in an
in-memory overlay of its table until the next flush writes it. ``read`` looks there
first, so every reader sees the newest value whether or not it is flushed yet; then in
the ``ReadCache`` of recently flushed values (their bytes); then in the store.
"""
from __future__ import annotations

from itertools import islice
from typing import Optional

import orjson

from app.kafka import fastpath
from app.kafka.internals import store_get
from app.main import TOPIC_CONFIG, app
from app.settings import settings


def document_table(name: str, help: str):
    # value_type=bytes selects Faust's raw serializer; key_type=str keeps the JSON keys
    # that existing stores and changelogs were written with.
    return app.Table(name, default=None, key_type=str, value_type=bytes,
                     partitions=settings.partitions, help=help,
                     extra_topic_configs=dict(TOPIC_CONFIG))


#: Per table name, the overlays ``read`` consults before the store, newest first: the
#: values decided since the last flush, then the ones the running flush is writing.
#: ``{key: value}``, None for a deleted key. Filled and emptied by agents/writeback.py.
overlays: dict[str, tuple[dict, dict]] = {}
#: Per table name, values the write-back has flushed (equal to the store's), as the encoded
#: bytes it wrote, the most recently flushed last: ``ReadCache``. Consulted after the overlays.
caches: dict[str, "ReadCache"] = {}
_ABSENT = object()


def overlay_of(table) -> tuple[dict, dict]:
    return overlays.setdefault(table.name, ({}, {}))


class ReadCache(dict):
    """The last ``bound`` keys a flush wrote, as the bytes it wrote (None: deleted).

    A read of a customer changed in the last flushes is then a dict lookup and a JSON
    decode instead of a RocksDB get too: the agent's first read of a customer after each
    flush (about one per customer per flush interval) and the lookups of active customers.
    Bytes, not decoded documents: a decoded document is a dozen small containers, and every
    full garbage collection scans each of them (40k cached documents made most of
    a worker's ~350k tracked objects and its 0.3-0.5 s pauses); bytes are not scanned.
    Only the customers agent writes these tables, always through the flush that fills
    this, so an entry equals the store's value while this worker keeps the partition; on
    every rebalance (``clear``, agents/customers.py) it is dropped, since a partition that
    comes back may have been changed by another worker meanwhile; a flush during a
    rebalance, before that drop, removes the keys it wrote (``discard``).
    """

    def __init__(self, bound: int):
        super().__init__()
        self.bound = bound

    def keep(self, flushed: dict) -> None:
        """Take a flush's ``{key: bytes or None}``; the oldest keys beyond ``bound`` leave."""
        if not self.bound:
            return
        for key in flushed:  # a key written again moves to the newest end
            self.pop(key, None)
        self.update(flushed)
        excess = len(self) - self.bound
        if excess > 0:
            for key in list(islice(self, excess)):
                del self[key]


    def discard(self, keys) -> None:
        """Forget ``keys`` (written, but not to be cached: a rebalance runs)."""
        for key in keys:
            self.pop(key, None)


def cache_of(table) -> ReadCache:
    return caches.setdefault(table.name, ReadCache(settings.read_cache_keys))


def encode(value: dict) -> bytes:
    return orjson.dumps(value)


def read(table, key: str, partition: Optional[int] = None) -> Optional[dict]:
    """The decoded value of ``key``, None if absent: the overlays', the read cache's,
    else one store read.

    ``partition`` (the key's, when the caller knows it) reads that partition's database
    only (``app.kafka.fastpath.get_local``); without it, Faust's store finds the partition.
    ``table.get`` would read the store twice (see ``app.kafka.internals.store_get``).
    A value from an overlay is shared with it: callers must not mutate it.
    """
    return value_of(source(table, key, partition))


def source(table, key: str, partition: Optional[int] = None):
    """What ``read`` decodes: an overlay's document (a dict), the read cache's or the
    store's bytes, or None (absent). An overlay's document and the cache's bytes stay the
    very same object while the value is unchanged (a change is a new object), so the web
    views reuse an answer by their identity without decoding (``web.responses``); the
    store's bytes are a new object on every read."""
    layers = overlays.get(table.name)
    if layers is not None:
        for layer in layers:
            if layer:
                value = layer.get(key, _ABSENT)
                if value is not _ABSENT:
                    return value
        cache = caches.get(table.name)
        if cache:
            raw = cache.get(key, _ABSENT)
            if raw is not _ABSENT:
                return raw
    if partition is not None and fastpath.supports(table):
        return fastpath.get_local(table, key, partition)
    return store_get(table, key)


def value_of(src) -> Optional[dict]:
    """The document of a ``source``."""
    return orjson.loads(src) if isinstance(src, bytes) else src
