"""Pins app.kafka.fastpath: the write-back flush's bulk table writes on a real RocksDB store.

They must leave the store and the changelog as Faust's ``table[key] = value`` does: the
store's key encoding, raw value bytes, the source event's partition, a tombstone for a
delete, and the persisted changelog offset (once per partition, the last one).
"""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.record.default_records import DefaultRecordBatch
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from app.kafka import contact, fastpath, fenced
from app.main import app
from tables.profiles import profiles


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(type(app.conf), "tabledir", property(lambda conf: tmp_path))
    return RocksDBStore("rocksdb://", app, profiles, table_name="fastpath-test",
                        key_type=profiles.key_type, key_serializer=profiles.key_serializer,
                        value_type=profiles.value_type,
                        value_serializer=profiles.value_serializer)


def test_put_local_writes_what_faust_set_writes(store):
    table = SimpleNamespace(data=store)
    assert fastpath.supports(table)
    records = fastpath.put_local(table, [("c1", b'{"a":1}', 3), ("c2", b'{"b":2}', 5),
                                         ("c3", None, 3)])
    assert records == [(b'"c1"', b'{"a":1}', 3), (b'"c2"', b'{"b":2}', 5), (b'"c3"', None, 3)]
    assert store._db_for_partition(3).get(b'"c1"') == b'{"a":1}'
    assert store._db_for_partition(5).get(b'"c2"') == b'{"b":2}'
    assert b'"c1"' not in store._key_index  # not indexed: Faust's lookup tries each partition
    assert store["c1"] == b'{"a":1}' and store["c2"] == b'{"b":2}'  # Faust's reads agree
    fastpath.put_local(table, [("c1", None, 3)])
    assert "c1" not in store


def test_get_local_reads_one_partition_as_faust_reads_the_store(store):
    table = SimpleNamespace(data=store)
    fastpath.put_local(table, [("c2", b'{"b":2}', 5), ("c3", b'{"c":3}', 3)])
    assert fastpath.get_local(table, "c2", 5) == b'{"b":2}' == store["c2"]
    assert fastpath.get_local(table, "c3", 3) == b'{"c":3}' == store["c3"]
    assert fastpath.get_local(table, "c2", 3) is None  # only the named partition is read
    assert fastpath.get_local(table, "nobody", 5) is None
    fastpath.put_local(table, [("c2", None, 5)])
    assert fastpath.get_local(table, "c2", 5) is None and "c2" not in store


def test_an_in_memory_store_is_not_supported():
    assert not fastpath.supports(profiles)  # the test context's memory:// store


async def test_send_changelog_sends_record_batches_and_persists_the_last_offsets(store,
                                                                                  monkeypatch):
    """Each partition's records, in order, in closed record batches of at most BATCH_BYTES
    (the first record of a batch always fits); the persisted offset is the base offset the
    broker gave the partition's last batch plus its records - 1."""
    monkeypatch.setattr(fastpath, "BATCH_BYTES", 300)  # ~4 of these records per batch
    sent, loop = [], asyncio.get_running_loop()
    base = {3: 100, 5: 500}

    class Producer:  # aiokafka's AIOKafkaProducer as send_changelog uses it
        _message_accumulator = SimpleNamespace(_compression_type=0)

        async def send_batch(self, batch, topic, *, partition):
            assert batch.closed()  # nothing else can be appended to it
            records = [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
            sent.append((topic, partition, records))
            fut = loop.create_future()
            fut.set_result(SimpleNamespace(partition=partition, offset=base[partition]))
            base[partition] += len(records)
            return fut

    fake_app = leased_app(monkeypatch, Producer())
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    topic = profiles.changelog_topic.get_topic_name()
    records = [(f'"c{i}"'.encode(), None if i % 5 == 0 else b"x" * 60, 3 if i % 2 else 5)
               for i in range(20)]
    last = await fastpath.send_changelog(fake_app, table, records)
    for partition in (3, 5):
        batches = [recs for t, p, recs in sent if p == partition and t == topic]
        assert [kv for recs in batches for kv in recs] == [
            (k, v) for k, v, p in records if p == partition]  # tombstones included
        assert len(batches) > 1 and all(len(recs) <= 4 for recs in batches)
    assert last == {3: 109, 5: 509}
    assert store.persisted_offset(TP(topic, 3)) == 109
    assert store.persisted_offset(TP(topic, 5)) == 509


def leased_app(monkeypatch, producer, rebalancing=False, contact_age=0.0):
    """An app whose changelog producer is ``producer`` and whose last group contact was
    ``contact_age`` seconds ago (10 s session: a 5 s write lease)."""
    async def changelog_producer(app):
        return producer

    monkeypatch.setattr(fenced, "producer", changelog_producer)
    monkeypatch.setattr(contact, "last", time.monotonic() - contact_age)
    return SimpleNamespace(conf=SimpleNamespace(broker_session_timeout=10.0),
                           rebalancing=rebalancing, should_stop=False)


class FlakyProducer:
    """Fails the first batch of partition 3 as an expired batch would, then answers."""
    _message_accumulator = SimpleNamespace(_compression_type=0)

    def __init__(self):
        self.sent, self.failed = [], 0

    async def send_batch(self, batch, topic, *, partition):
        fut = asyncio.get_running_loop().create_future()
        records = [r.key for r in DefaultRecordBatch(bytes(batch._build()))]
        if partition == 3 and not self.failed:
            self.failed += 1
            fut.set_exception(KafkaTimeoutError())
        else:
            self.sent.append((partition, records))
            fut.set_result(SimpleNamespace(offset=10 * len(self.sent)))
        return fut


async def test_a_failed_batch_sends_its_partition_again_once_the_lease_holds(store, monkeypatch):
    monkeypatch.setattr(fastpath, "RETRY_BACKOFF_S", 0.0)
    producer = FlakyProducer()
    app_ = leased_app(monkeypatch, producer)
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    records = [(f'"c{i}"'.encode(), b"v", 3 if i % 2 else 5) for i in range(6)]
    await fastpath.send_changelog(app_, table, records)
    assert producer.failed == 1
    assert sorted(producer.sent) == [(3, [b'"c1"', b'"c3"', b'"c5"']),
                                     (5, [b'"c0"', b'"c2"', b'"c4"'])]


async def test_no_batch_is_handed_over_past_the_lease_and_a_rebalance_then_fences(store,
                                                                                 monkeypatch):
    producer = FlakyProducer()
    app_ = leased_app(monkeypatch, producer, rebalancing=True, contact_age=5.5)
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    with pytest.raises(fenced.Fenced, match="no group contact for 5.5 s"):
        await fastpath.send_changelog(app_, table, [(b'"c1"', b"v", 5)])
    assert producer.sent == [] and producer.failed == 0
    assert store.persisted_offset(TP(profiles.changelog_topic.get_topic_name(), 5)) is None


async def test_without_the_lease_a_flush_waits_for_contact_to_return(store, monkeypatch):
    producer = FlakyProducer()
    app_ = leased_app(monkeypatch, producer, contact_age=6.0)
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    sending = asyncio.ensure_future(fastpath.send_changelog(app_, table, [(b'"c1"', b"v", 5)]))
    await asyncio.sleep(0.2)
    assert not sending.done() and producer.sent == []
    contact.mark(time.monotonic())  # a heartbeat accepted: the session had not expired
    assert await asyncio.wait_for(sending, 2) == {5: 10}


async def test_new_batch_uses_the_real_producers_compression_and_faust_hands_it_over():
    """The private parts send_changelog reads: aiokafka's accumulator compression (gzip here
    is codec 1 in the built batch) and Faust's ``Producer._ensure_producer``."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", compression_type="gzip")
    batch = fastpath.new_batch(producer)
    assert batch.append(timestamp=None, key=b"k", value=b"v" * 100) is not None
    built = DefaultRecordBatch(bytes(batch._build()))
    assert built.compression_type == 1 and [(r.key, r.value) for r in built] == [(b"k", b"v" * 100)]
    assert type(app.producer).__name__ == "Producer" and callable(app.producer._ensure_producer)


async def test_a_changelog_producer_that_cannot_start_is_started_afresh(store, monkeypatch):
    """The first flush may come while no broker is reachable: the failed start is stopped
    and forgotten, and the next try builds a new producer (it used to crash the worker)."""
    monkeypatch.setattr(fastpath, "RETRY_BACKOFF_S", 0.0)
    made = []

    class Producer(FlakyProducer):
        def __init__(self, **settings):
            super().__init__()
            self.settings, self.stopped = settings, False
            made.append(self)

        async def start(self):
            if len(made) == 1:
                raise KafkaConnectionError("Unable to bootstrap from [('10.0.0.1', 9092)]")

        async def stop(self):
            self.stopped = True

    monkeypatch.setattr(fenced.aiokafka, "AIOKafkaProducer", Producer)
    monkeypatch.setattr(fenced, "_producers", {})
    monkeypatch.setattr(contact, "last", time.monotonic())
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    sent = await fastpath.send_changelog(app, table, [(b'"c1"', b"v", 5)])
    assert sent == {5: 10} and len(made) == 2 and made[0].stopped and not made[1].stopped
    assert made[1].settings["request_timeout_ms"] == int(fenced.lease(app).request_s * 1000)
    assert made[1].settings["client_id"].endswith("-changelog")
    assert fenced.CLIENT_IDS[made[1].settings["client_id"]] == int(  # TCP_USER_TIMEOUT
        fenced.lease(app).unacked_s * 1000)
    assert made[1].sent == [(5, [b'"c1"'])]


async def test_a_stopping_worker_waits_for_a_heartbeat_and_gives_up_only_once_its_session_ended(
        monkeypatch):
    """A stop waits for the flush while heartbeats go on: one accepted renews the lease. Past
    the session (10 s), no heartbeat can be accepted any more and the flush is fenced."""
    app_ = leased_app(monkeypatch, FlakyProducer(), contact_age=7.0)
    app_.should_stop = True
    waiting = asyncio.ensure_future(fenced.wait_lease(app_))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    contact.mark(time.monotonic())
    await asyncio.wait_for(waiting, 1)
    monkeypatch.setattr(contact, "last", time.monotonic() - 10.5)
    with pytest.raises(fenced.Fenced, match="no group contact for 10.5 s"):
        await fenced.wait_lease(app_)
