"""How Persona's tables hold values: one JSON document per customer, as orjson bytes.

The tables use Faust's ``raw`` value serializer and the agents encode each new state
once with orjson: the same bytes go to RocksDB and to the changelog. Faust's default
``json`` codec would encode every write twice (store + changelog) with the stdlib
encoder. The bytes are plain JSON, so stores and changelogs written with the ``json``
codec read back unchanged.

The customers agent writes back (``agents/writeback.py``): a decided state stays in an
in-memory overlay of its table until the next flush writes it. ``read`` looks there
first, so every reader sees the newest value whether or not it is flushed yet; then in
the ``ReadCache`` of recently flushed documents; then in the store (bytes, decoded).
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
#: Per table name, documents the write-back has flushed (equal to the store's values), the
#: most recently flushed last: ``ReadCache``. Consulted after the overlays.
caches: dict[str, "ReadCache"] = {}
_ABSENT = object()


def overlay_of(table) -> tuple[dict, dict]:
    return overlays.setdefault(table.name, ({}, {}))


class ReadCache(dict):
    """The last ``bound`` keys a flush wrote, as the documents it wrote (None: deleted).

    A read of a customer changed in the last flushes is then a dict lookup, with no RocksDB
    get and no JSON decode: the agent's first read of a customer after each flush (about
    one per customer per flush interval) and the lookups of active customers. Decoded
    documents, not their bytes: with bytes, that decode (and freeing the decoded copy) cost
    the worker 85-95 µs per event before a flush and 100-107 after, at 9,000 events/s on
    customers with ~16 events, against 66-81 and 83-92 with documents. The price is what
    every full garbage collection scans (a document is a few dozen containers); the
    worker's collector runs one only every few minutes under load
    (``app.observability.gc_policy``).
    Only the customers agent writes these tables, always through the flush that fills
    this, so an entry equals the store's value while this worker keeps the partition; on
    every rebalance (``clear``, agents/customers.py) it is dropped, since a partition that
    comes back may have been changed by another worker meanwhile, and a flush during a
    rebalance drops it before that (``agents.flush_write.FlushWrites.retire``).
    """

    def __init__(self, bound: int):
        super().__init__()
        self.bound = bound

    def keep(self, flushed: dict) -> list:
        """Take a flush's ``{key: document or None}``; the oldest keys beyond ``bound``
        leave (all of them with ``bound`` 0). Returns the documents that left (older
        versions and the oldest keys), for the caller to free a step at a time
        (``agents.flush_write.FlushWrites.free_retired``)."""
        gone: list = []
        pop = self.pop
        for key in flushed:  # a key written again moves to the newest end
            old = pop(key, _ABSENT)
            if old is not _ABSENT:
                gone.append(old)
        self.update(flushed)
        excess = len(self) - self.bound
        if excess > 0:
            gone.extend(pop(key) for key in list(islice(self, excess)))
        return gone


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
    """What ``read`` decodes: an overlay's or the read cache's document (a dict), the
    store's bytes, or None (absent). An overlay's or the cache's document stays the
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
            value = cache.get(key, _ABSENT)
            if value is not _ABSENT:
                return value
    if partition is not None and fastpath.supports(table):
        return fastpath.get_local(table, key, partition)
    return store_get(table, key)


def value_of(src) -> Optional[dict]:
    """The document of a ``source``."""
    return orjson.loads(src) if isinstance(src, bytes) else src
