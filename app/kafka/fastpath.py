"""Bulk table writes for the write-back flush: what Faust's table write does, per flush.

Faust's ``table[key] = value`` on the RocksDB store does one ``put``, buffers one changelog
record in its ``ProducerBuffer`` (100 records at most: "producer buffer full"), sends it
from a background task, and on each acknowledgement puts the persisted changelog offset
into RocksDB again (``Collection._on_changelog_sent``): ~90 µs of Python per record.
``put_local`` and ``send_changelog`` do the same work in bulk: one RocksDB ``WriteBatch``
per partition, the changelog records in record batches of up to ``BATCH_BYTES`` built here
and handed to aiokafka's producer (``send_batch``), and once the broker has them all, the
persisted offset once per partition. The bytes are the ones
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
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

#: Records appended per loop step (a flush sends thousands).
YIELD_EVERY = 500
#: Bytes of one changelog record batch: well under the broker's message size limit (Kafka's
#: default ``message.max.bytes`` is 1 MB), big enough for ~50 documents per request.
BATCH_BYTES = 256 * 1024
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

    Each partition's records go in record batches of up to ``BATCH_BYTES`` built here
    (aiokafka's ``BatchBuilder``, handed over with its public ``send_batch``): one
    ``producer.send`` per record costs ~100 µs of Python (Faust's wrapper, aiokafka's
    per-message future and accumulator) and aiokafka's own batches hold 16 KB
    (``max_batch_size``), one or two documents. A flush of 10 s of changes sent that way
    took ~2 s of the worker's one core and stalled the agent (freshness).
    A batch's records get consecutive offsets from its base offset (the broker's answer).
    """
    if not records:
        return {}
    topic = table.changelog_topic.get_topic_name()
    producer = aiokafka_producer(app)
    by_partition: dict = {}
    for key, value, partition in records:
        by_partition.setdefault(partition, []).append((key, value))
    sent = await asyncio.gather(*(_send_partition(producer, topic, partition, recs)
                                  for partition, recs in by_partition.items()))
    last = {partition: offset for partition, offset in sent}
    store = table.data
    for partition, offset in last.items():
        store.set_persisted_offset(TP(topic, partition), offset)
    return last


def aiokafka_producer(app):
    """The aiokafka producer under Faust's (``Producer._ensure_producer``)."""
    return app.producer._ensure_producer()


def new_batch(producer) -> BatchBuilder:
    """An empty record batch of ``BATCH_BYTES`` with the producer's compression."""
    return BatchBuilder(BATCH_BYTES, producer._message_accumulator._compression_type,
                        is_transactional=False)


async def _submit(producer, batch, topic: str, partition: int) -> tuple:
    """(future of the batch's metadata, its record count). Closed first: aiokafka would
    otherwise append other sends to this tp into it while it waits in the accumulator."""
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition), batch.record_count()


async def _send_partition(producer, topic: str, partition: int, records: list) -> tuple:
    """(partition, offset of its last record): every record in as few batches as fit."""
    pending = []  # (future of a batch, records in it)
    batch = new_batch(producer)
    for i, (key, value) in enumerate(records):
        if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it
            pending.append(await _submit(producer, batch, topic, partition))
            batch = new_batch(producer)
            batch.append(timestamp=None, key=key, value=value)  # a first record always fits
        if i % YIELD_EVERY == YIELD_EVERY - 1:  # let the agent and reads run
            await asyncio.sleep(0)
    pending.append(await _submit(producer, batch, topic, partition))
    offset = -1
    for future, count in pending:
        meta = await future
        offset = max(offset, meta.offset + count - 1)
    return partition, offset
