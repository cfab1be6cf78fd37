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
import logging
from typing import Iterable, Optional

import rocksdict
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from app.kafka import fenced

log = logging.getLogger(__name__)

#: Records appended per loop step (a flush sends thousands).
YIELD_EVERY = 500
#: Bytes of one changelog record batch: well under the broker's message size limit (Kafka's
#: default ``message.max.bytes`` is 1 MB), a few dozen documents. aiokafka's sender builds a
#: batch in one step of the event loop (~3 ms for 64 KB, ~12 ms for 256 KB): lookups wait.
BATCH_BYTES = 64 * 1024
#: Sent again after these, besides aiokafka's retriable errors (an expired batch, a lost link).
RETRIED = (KafkaTimeoutError, KafkaConnectionError)
RETRY_BACKOFF_S = 0.2
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

    They go through the changelog producer (``app.kafka.fenced``), one batch at a time per
    partition, each handed over only while the write lease holds. A batch that fails (its
    short request timeout during a broker's failover) is sent again with the rest of its
    partition's records once the lease holds: the same values again, harmless. Raises
    ``fenced.Fenced`` when the lease ended and the group is changing.
    """
    if not records:
        return {}
    topic = table.changelog_topic.get_topic_name()
    producer = await _changelog_producer(app)
    by_partition: dict = {}
    for key, value, partition in records:
        by_partition.setdefault(partition, []).append((key, value))
    sent = await asyncio.gather(*(_send_partition(app, producer, topic, partition, recs)
                                  for partition, recs in by_partition.items()))
    last = {partition: offset for partition, offset in sent}
    store = table.data
    for partition, offset in last.items():
        store.set_persisted_offset(TP(topic, partition), offset)
    return last


async def _changelog_producer(app):
    """The changelog producer, once it has started (tried again while the lease holds)."""
    while True:
        await fenced.wait_lease(app)
        try:
            return await fenced.producer(app)
        except KafkaError as exc:
            log.warning("changelog producer: %r; trying again", exc)
            await asyncio.sleep(RETRY_BACKOFF_S)


def new_batch(producer) -> BatchBuilder:
    """An empty record batch of ``BATCH_BYTES`` with the producer's compression."""
    return BatchBuilder(BATCH_BYTES, producer._message_accumulator._compression_type,
                        is_transactional=False)


async def _submit(producer, batch, topic: str, partition: int) -> tuple:
    """(future of the batch's metadata, its record count). Closed first: aiokafka would
    otherwise append other sends to this tp into it while it waits in the accumulator."""
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition), batch.record_count()


async def _send_partition(app, producer, topic: str, partition: int, records: list) -> tuple:
    """(partition, offset of its last record), sent again from its first record after a
    failed batch."""
    while True:
        try:
            return partition, await _send_once(app, producer, topic, partition, records)
        except KafkaError as exc:
            if not (exc.retriable or isinstance(exc, RETRIED)):
                raise
            log.warning("changelog %s[%s]: %r; sending its %d records again", topic,
                        partition, exc, len(records))
            await asyncio.sleep(RETRY_BACKOFF_S)


async def _send_once(app, producer, topic: str, partition: int, records: list) -> int:
    """Every record in as few batches as fit, each submitted once the one before is
    acknowledged and the lease holds (so none waits in the accumulator past its check)."""
    offset = -1
    batch = new_batch(producer)
    for i, (key, value) in enumerate(records):
        if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it
            offset = max(offset, await _deliver(app, producer, batch, topic, partition))
            batch = new_batch(producer)
            batch.append(timestamp=None, key=key, value=value)  # a first record always fits
        if i % YIELD_EVERY == YIELD_EVERY - 1:  # let the agent and reads run
            await asyncio.sleep(0)
    return max(offset, await _deliver(app, producer, batch, topic, partition))


async def _deliver(app, producer, batch, topic: str, partition: int) -> int:
    await fenced.wait_lease(app)
    future, count = await _submit(producer, batch, topic, partition)
    meta = await future
    return meta.offset + count - 1
