"""Pins app.kafka.fastpath: the write-back flush's bulk table writes on a real RocksDB store.

They must leave the store and the changelog as Faust's ``table[key] = value`` does: the
store's key encoding, raw value bytes, the source event's partition, a tombstone for a
delete, and the persisted changelog offset (once per partition, the last one).
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from app.kafka import fastpath
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


async def test_send_changelog_sends_each_record_and_persists_the_last_offset(store):
    sent, loop = [], asyncio.get_running_loop()

    async def send(topic, key, value, partition, timestamp, headers):
        sent.append((topic, key, value, partition))
        fut = loop.create_future()
        fut.set_result(SimpleNamespace(partition=partition, offset=100 + len(sent)))
        return fut

    fake_app = SimpleNamespace(producer=SimpleNamespace(send=send))
    table = SimpleNamespace(data=store, changelog_topic=profiles.changelog_topic)
    topic = profiles.changelog_topic.get_topic_name()
    last = await fastpath.send_changelog(fake_app, table, [(b'"c1"', b"x", 3), (b'"c2"', None, 3),
                                                           (b'"c3"', b"y", 5)])
    assert sent == [(topic, b'"c1"', b"x", 3), (topic, b'"c2"', None, 3), (topic, b'"c3"', b"y", 5)]
    assert last == {3: 102, 5: 103}
    assert store.persisted_offset(TP(topic, 3)) == 102
    assert store.persisted_offset(TP(topic, 5)) == 103
