"""Bulk restore of active changelog partitions (RocksDB store only).

Faust restores a table record by record through its consumer: each changelog record is
an event on the changelog queue, with bookkeeping per record (~236 µs of CPU each, about
4k records/s here). Recovery does not need any of that while the partitions are paused
for everything else: this reads the active changelog partitions with a plain aiokafka
consumer (``getmany`` in large batches) and writes each batch with one RocksDB
``WriteBatch`` per partition through the store's own ``apply_changelog_batch`` (which also
records the persisted offset).

It runs inside Faust's recovery, right before Faust seeks the consumer to the active
offsets (``Recovery._seek_offsets`` with title ``"active"``): it moves each partition's
offset in ``active_offsets`` to the last record it applied, ending exactly at Faust's
highwater (by position, not by count), so Faust then seeks past it and finds nothing left
to restore. On a new rebalance it stops between batches: what it wrote is consistent
(records and persisted offset in the same batch), and Faust's restarted recovery reads on
from there. Any error falls back to Faust's own path from the last applied offset.
Standby partitions are left to Faust.
"""
from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP

log = logging.getLogger(__name__)
MAX_RECORDS = 20_000
FETCH_BYTES = 16 * 1024 * 1024
_seek_offsets = Recovery._seek_offsets


def _event(tp: TP, record) -> SimpleNamespace:
    """What the store's ``apply_changelog_batch`` reads of a Faust event: its message."""
    return SimpleNamespace(message=SimpleNamespace(
        tp=tp, partition=tp.partition, offset=record.offset, key=record.key,
        value=record.value))


def pending(recovery, tps) -> dict:
    """``{tp: (first offset to read, last offset to apply)}`` of RocksDB-backed actives."""
    out = {}
    for tp in tps:
        table = recovery.tp_to_table.get(tp)
        if table is None or not isinstance(table.data, RocksDBStore):
            continue
        last = recovery.active_highwaters.get(tp)  # Faust's "highwater - 1": the last offset
        applied = recovery.active_offsets.get(tp)
        applied = -1 if applied is None else applied
        if last is not None and last > applied:
            out[tp] = (applied + 1, last)
    return out


def consumer_settings(conf) -> dict:
    """A group-less consumer on Faust's brokers with Faust's credentials and TLS (SASL, SSL
    from ``broker_credentials``/``ssl_context``), fetching in large batches."""
    return dict(
        bootstrap_servers=[f"{url.host}:{url.port or 9092}" for url in conf.broker],
        client_id=f"{conf.broker_client_id}-restore", group_id=None, enable_auto_commit=False,
        # A changelog's log start offset moves above 0 on Kafka (retention of windowed
        # tables, deleted records): a seek below it must read from the start, not the end.
        auto_offset_reset="earliest",
        request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
        check_crcs=conf.broker_check_crcs, fetch_max_bytes=FETCH_BYTES,
        max_partition_fetch_bytes=FETCH_BYTES, fetch_max_wait_ms=100,
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context))


async def bulk_restore(recovery, tps) -> int:
    """Apply the changelog records of ``tps`` up to Faust's highwaters; records applied."""
    todo = pending(recovery, tps)
    if not todo:
        return 0
    consumer = AIOKafkaConsumer(**consumer_settings(recovery.app.conf))
    started, applied = time.monotonic(), 0
    await consumer.start()
    try:
        ktps = {tp: TopicPartition(tp.topic, tp.partition) for tp in todo}
        consumer.assign(list(ktps.values()))
        for tp, (first, _) in todo.items():
            consumer.seek(ktps[tp], first)
        while todo and not recovery.signal_recovery_start.is_set() and not recovery.app.should_stop:
            batches = await consumer.getmany(*(ktps[tp] for tp in todo), timeout_ms=500,
                                             max_records=MAX_RECORDS)
            if not batches:  # the last offsets may be no records (e.g. compacted away)
                for tp in [tp for tp in todo if await consumer.position(ktps[tp]) > todo[tp][1]]:
                    del todo[tp]
            for ktp, records in batches.items():
                tp = TP(ktp.topic, ktp.partition)
                last = todo[tp][1] if tp in todo else -1
                records = [r for r in records if r.offset <= last]
                if records:
                    table = recovery.tp_to_table[tp]
                    table.apply_changelog_batch([_event(tp, r) for r in records])
                    recovery.active_offsets[tp] = records[-1].offset
                    applied += len(records)
                if tp in todo and recovery.active_offsets[tp] >= last:
                    del todo[tp]
    finally:
        await _stop(consumer)
    seconds = time.monotonic() - started
    log.info("bulk restore: %d changelog records in %.2fs (%.0f/s)%s", applied, seconds,
             applied / seconds if seconds else 0.0, "; interrupted" if todo else "")
    return applied


async def _stop(consumer) -> None:
    """Stop the consumer; a CancelledError of its own tasks is not ours to raise."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("bulk restore consumer: a task was cancelled while stopping")


async def _bulk_then_seek(self, consumer, tps, offsets, title):
    if title == "active" and offsets is self.active_offsets:
        try:
            await bulk_restore(self, set(tps))
        except Exception as exc:  # never worse than Faust's own path
            log.warning("bulk restore failed, Faust restores the rest: %r", exc)
    return await _seek_offsets(self, consumer, tps, offsets, title)


def install() -> None:
    Recovery._seek_offsets = _bulk_then_seek
