"""Bulk table writes for the write-back flush: what Faust's table write does, per flush.

Faust's ``table[key] = value`` on the RocksDB store does one ``put``, buffers one changelog
record in its ``ProducerBuffer`` (100 records at most: "producer buffer full"), sends it
from a background task, and on each acknowledgement puts the persisted changelog offset
into RocksDB again (``Collection._on_changelog_sent``): ~90 µs of Python per record.
``write_many`` does the same work in bulk: one RocksDB ``WriteBatch`` per partition, every
changelog record handed straight to the producer (aiokafka batches them), and once the
broker has them all, the persisted offset once per partition. The bytes are the ones
Faust's path writes (the store's own key encoding; values are raw bytes), to the same
changelog partition (the partition of the customer's source event). Unlike ``Store._set``
it does not fill the store's key -> partition LRU index (a lock per key): Persona's reads
name the partition (``get_local``), and Faust's own lookup finds an unindexed key by
trying each partition. Tables on another store (the in-memory one of Faust's test
context) take Faust's own path.
"""
from __future__ import annotations

import asyncio
from typing import Iterable, Optional

import rocksdict
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

#: Records sent per loop step (a flush sends thousands; each send is ~100 µs of Python).
YIELD_EVERY = 100
#: Off when ``app.kafka.install`` found untested Faust/aiokafka versions (operator override).
ENABLED = True


def supports(table) -> bool:
    """True if the bulk path can write ``table`` (a rocksdict-backed RocksDB store)."""
    store = table.data
    return ENABLED and isinstance(store, RocksDBStore) and store.use_rocksdict


def get_local(table, key: str, partition: int) -> Optional[bytes]:
    """The stored bytes of ``key`` from the RocksDB of its ``partition``, None if absent.

    Faust's ``Store._get`` knows the partition only inside a stream's current event; a
    batch agent or a web view gets ``_get_bucket_for_key``: a lock-guarded LRU lookup,
    then a ``key_may_exist`` + ``get`` on every partition's database until one has the
    key (~25 µs with 8 partitions). The caller knows the partition (the event's, or the
    key's by the partitioner), so this is one ``get`` on one database.
    """
    store = table.data
    return store._db_for_partition(partition).get(store._encode_key(key))


def put_local(table, items: Iterable[tuple]) -> list:
    """Write ``(key, value bytes or None, partition)`` to the store: one WriteBatch per
    partition. Returns the ``(key bytes, value, partition)`` changelog records."""
    store = table.data
    encode_key = store._encode_key
    batches: dict = {}
    records = []
    for key, value, partition in items:
        key_bytes = encode_key(key)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(key_bytes)
        else:
            batch.put(key_bytes, value)
        records.append((key_bytes, value, partition))
    for partition, batch in batches.items():
        store._db_for_partition(partition).write(batch)
    return records


async def send_changelog(app, table, records: list) -> Optional[dict]:
    """Send the records to the table's changelog, wait for all, persist the offsets.

    Returns ``{partition: last offset}``. The persisted offset is what Faust's recovery
    reads back at start (``Store.persisted_offset``) to skip what the store already has.
    """
    if not records:
        return {}
    topic = table.changelog_topic.get_topic_name()
    send = app.producer.send
    futures = []
    for i, (key, value, partition) in enumerate(records):
        futures.append(await send(topic, key, value, partition, None, None))
        if i % YIELD_EVERY == YIELD_EVERY - 1:  # ~100 µs each: let the agent and reads run
            await asyncio.sleep(0)
    last: dict = {}
    for future in futures:  # in send order: once one is done most later ones are too, so
        meta = await future  # this suspends a few times, where gather adds a callback each
        partition, offset = meta.partition, meta.offset
        if offset > last.get(partition, -1):
            last[partition] = offset
    store = table.data
    for partition, offset in last.items():
        store.set_persisted_offset(TP(topic, partition), offset)
    return last
