"""Pins what each private-API use in app.kafka does on the installed Faust/aiokafka.

If an upgrade renames or changes one of these, a test here fails before a worker does.
The two rebalance patches are pinned in tests/agents/test_faust_workarounds.py, the broker
shim in tests/e2e/test_broker_compat.py.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import faust
import pytest
from faust.transport.producer import ProducerBuffer
from faust.types import TP

import app.kafka as kafka
from app.kafka import internals
from app.main import app
from tables.profiles import profiles


def test_installed_versions_are_the_ones_the_patches_were_written_for():
    assert kafka.version_mismatches() == {}
    assert kafka.check_versions() is True


def test_a_version_mismatch_is_logged_as_an_error(monkeypatch, caplog):
    monkeypatch.setitem(kafka.WRITTEN_FOR, "faust-streaming", "0.0.1")
    with caplog.at_level(logging.ERROR, logger="app.kafka"):
        assert kafka.check_versions() is False
    assert "written for faust-streaming==0.0.1" in caplog.text


def _recorded_installs(monkeypatch) -> list:
    from app.kafka import (
        broker_compat,
        consume,
        contact,
        fastpath,
        fetch,
        restore,
        webview,
        workarounds,
    )
    calls = []
    for mod in (broker_compat, consume, contact, fetch, restore, webview, workarounds):
        monkeypatch.setattr(mod, "install", lambda *a, _n=mod.__name__: calls.append(_n))
    monkeypatch.setattr(fastpath, "ENABLED", fastpath.ENABLED)  # restored after the test
    return calls


def test_untested_versions_stop_the_worker_naming_them(monkeypatch, capsys):
    calls = _recorded_installs(monkeypatch)
    monkeypatch.setitem(kafka.WRITTEN_FOR, "aiokafka", "0.0.1")
    with pytest.raises(SystemExit) as exc:
        kafka.install(object(), local_broker_compat=True)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "aiokafka==" in err and "written for 0.0.1" in err
    assert "PERSONA_ALLOW_UNTESTED_VERSIONS=1" in err
    assert calls == []  # nothing patched


def test_allowed_untested_versions_keep_the_workarounds_and_drop_the_fast_paths(monkeypatch):
    from app.kafka import fastpath
    calls = _recorded_installs(monkeypatch)
    monkeypatch.setitem(kafka.WRITTEN_FOR, "aiokafka", "0.0.1")
    assert kafka.install(object(), local_broker_compat=True, allow_untested=True) is False
    assert calls == ["app.kafka.workarounds", "app.kafka.contact", "app.kafka.broker_compat"]
    assert fastpath.ENABLED is False
    assert not fastpath.supports(profiles)


def test_tested_versions_install_everything(monkeypatch):
    from app.kafka import fastpath
    calls = _recorded_installs(monkeypatch)
    assert kafka.install(object(), local_broker_compat=False) is True
    assert calls == ["app.kafka.workarounds", "app.kafka.contact", "app.kafka.restore",
                     "app.kafka.consume", "app.kafka.fetch", "app.kafka.webview"]
    assert fastpath.ENABLED is True


async def test_faust_hard_codes_the_fetch_wait_and_aiokafka_reads_it_and_the_minimum_at_start():
    import inspect

    from aiokafka import AIOKafkaConsumer

    from app import settings as app_settings
    from app.kafka import fetch
    faust_src = inspect.getsource(fetch._original)
    assert f"fetch_max_wait_ms={fetch.FAUST_FETCH_MAX_WAIT_MS}," in faust_src
    assert fetch.FAUST_FETCH_MAX_WAIT_MS == app_settings.FAUST_FETCH_MAX_WAIT_MS
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start)
    assert "fetch_min_bytes=self._fetch_min_bytes" in inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_min_bytes" not in faust_src  # Faust leaves aiokafka's 1 byte
    consumer = AIOKafkaConsumer(fetch_max_wait_ms=1500)
    assert consumer._fetch_max_wait_ms == 1500  # the attributes the patch sets
    assert consumer._fetch_min_bytes == 1


def test_fetch_install_sets_the_wait_and_minimum_on_the_consumer_faust_builds(monkeypatch):
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from app.kafka import fetch
    built = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)
    monkeypatch.setattr(fetch, "_original", lambda self, transport: built)
    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer",
                        AIOKafkaConsumerThread._create_worker_consumer)  # restored after
    fetch.install(100)
    assert AIOKafkaConsumerThread._create_worker_consumer(None, None) is built
    assert built._fetch_max_wait_ms == 100 and built._fetch_min_bytes == 1
    fetch.install(None, 65536)
    AIOKafkaConsumerThread._create_worker_consumer(None, None)
    assert built._fetch_max_wait_ms == 100 and built._fetch_min_bytes == 65536
    fetch.install(None)
    assert AIOKafkaConsumerThread._create_worker_consumer is fetch._original


def test_store_get_reads_the_store_once_and_misses_as_none():
    profiles.data.clear()
    profiles.data["c1"] = b'{"x":1}'
    assert internals.store_get(profiles, "c1") == b'{"x":1}'
    assert internals.store_get(profiles, "nobody") is None
    assert "nobody" not in profiles.data  # no default inserted (Table.get's __missing__)
    profiles.data.clear()


def test_as_current_event_makes_the_record_faust_current_message_inside_the_block_only():
    record = SimpleNamespace(topic="events", partition=3, offset=9)
    before = faust.current_event()
    with internals.as_current_event(record):
        assert faust.current_event().message is record  # what a table write reads
    assert faust.current_event() is before


async def test_drain_producer_waits_for_the_buffer_then_the_producer():
    calls = []

    class Buffer:
        size = 2

        async def flush(self):
            calls.append(("buffer", self.size))
            self.size -= 1

    class Producer:
        buffer = Buffer()

        async def flush(self):
            calls.append(("producer", self.buffer.size))

    await internals.drain_producer(Producer())
    assert calls == [("buffer", 2), ("buffer", 1), ("producer", 0)]
    # and Faust's buffer still has the two members the drain relies on
    assert isinstance(ProducerBuffer.size, property) and callable(ProducerBuffer.flush)


def test_owner_url_reads_the_assignors_partition_map():
    tp = TP("persona-profiles-changelog", 3)
    assert isinstance(app.assignor._tps_url, dict)
    app.assignor._tps_url[tp] = "http://10.0.0.9:6066"
    try:
        assert internals.owner_url(app, tp) == "http://10.0.0.9:6066"
        assert internals.owner_url(app, TP("persona-profiles-changelog", 99)) is None
    finally:
        del app.assignor._tps_url[tp]


@pytest.mark.parametrize("highwater, offset, restored", [
    (None, None, True), (100, None, True), (100, 99, False), (100, 100, True), (100, 101, True)])
def test_fully_restored_compares_the_recovery_maps(highwater, offset, restored):
    tp = TP("persona-profiles-changelog", 4)
    recovery = app.tables.recovery
    for attr, value in (("active_highwaters", highwater), ("active_offsets", offset)):
        getattr(recovery, attr).pop(tp, None)
        if value is not None:
            getattr(recovery, attr)[tp] = value
    try:
        assert internals.fully_restored(app, tp) is restored
    finally:
        recovery.active_highwaters.pop(tp, None)
        recovery.active_offsets.pop(tp, None)


def test_bulk_restore_wraps_faust_active_seek_with_the_signature_it_was_written_for():
    import inspect

    from faust.stores.rocksdb import Store as RocksDBStore
    from faust.tables.recovery import Recovery

    from app.kafka import restore

    assert Recovery._seek_offsets is restore._bulk_then_seek
    params = list(inspect.signature(restore._seek_offsets).parameters)
    assert params == ["self", "consumer", "tps", "offsets", "title"]
    for name in ("active_offsets", "active_highwaters", "tp_to_table", "signal_recovery_start"):
        assert hasattr(app.tables.recovery, name), name

    rocks = SimpleNamespace(data=object.__new__(RocksDBStore))
    memory = SimpleNamespace(data=profiles.data)  # memory:// in these tests: left to Faust
    a, b, c, d = (TP("persona-profiles-changelog", i) for i in range(4))
    recovery = SimpleNamespace(
        tp_to_table={a: rocks, b: rocks, c: rocks, d: memory},
        active_highwaters={a: 99, b: 10, c: -1, d: 50},  # Faust's highwater - 1
        active_offsets={a: 49, b: 10, c: -1, d: -1})
    # a: records 50..99 to apply; b: up to date; c: empty; d: not RocksDB
    assert restore.pending(recovery, {a, b, c, d}) == {a: (50, 99)}
    recovery.active_offsets = {}
    assert restore.pending(recovery, {a}) == {a: (0, 99)}  # nothing applied yet


def test_bulk_restore_consumer_uses_faust_brokers_credentials_and_tls():
    import ssl

    from faust.auth import SASLCredentials

    from app.kafka import restore

    conf = SimpleNamespace(
        broker=[SimpleNamespace(host="k1", port=9093), SimpleNamespace(host="k2", port=None)],
        broker_client_id="persona", broker_request_timeout=90.0, broker_check_crcs=True,
        broker_credentials=SASLCredentials(username="u", password="p",
                                           ssl_context=ssl.create_default_context()),
        ssl_context=None)
    opts = restore.consumer_settings(conf)
    assert opts["bootstrap_servers"] == ["k1:9093", "k2:9092"]
    assert opts["group_id"] is None and opts["enable_auto_commit"] is False
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_plain_username"] == "u"
    assert opts["sasl_plain_password"] == "p" and opts["ssl_context"] is not None
    conf.broker_credentials = None
    assert restore.consumer_settings(conf)["security_protocol"] == "PLAINTEXT"


def test_committed_offset_reads_the_consumers_committed_map_without_adding_to_it():
    consumer = app.consumer
    committed = consumer._committed_offset
    tp = TP("events", 5)
    assert internals.committed_offset(app, tp) is None and tp not in committed
    committed[tp] = 42  # what Consumer.commit (and the assignment's seek) store there
    try:
        assert internals.committed_offset(app, tp) == 42
    finally:
        committed.pop(tp, None)


async def test_fetched_highwater_is_the_last_fetch_answers_or_none():
    """Faust's ``Consumer.highwater`` reads aiokafka's per-partition fetch state: None before
    a fetch answered, the answer's high water after; a partition not assigned (a read racing
    a rebalance) or a consumer not started gives None rather than an error."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    assert internals.fetched_highwater(app, TP("events", 3)) is None  # not started
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", enable_auto_commit=False)
    tp = TopicPartition("events", 3)
    consumer.assign([tp])
    shim = SimpleNamespace(consumer=SimpleNamespace(highwater=consumer.highwater))
    assert internals.fetched_highwater(shim, tp) is None  # no fetch answered yet
    consumer._subscription.subscription.assignment.state_value(tp).highwater = 120
    assert internals.fetched_highwater(shim, tp) == 120  # what a fetch answer stores
    assert internals.fetched_highwater(shim, TopicPartition("events", 4)) is None


async def test_group_contact_keeps_the_send_time_of_accepted_heartbeats_of_this_group_only(
        monkeypatch):
    """aiokafka keeps its last good heartbeat in a local variable of the heartbeat loop;
    the wrapper records when an accepted heartbeat (or a completed rejoin) was sent."""
    import asyncio
    import inspect
    import time

    from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator

    from app.kafka import contact

    assert "last_ok_heartbeat = time.monotonic()" in inspect.getsource(
        GroupCoordinator._heartbeat_routine)
    assert list(inspect.signature(contact._originals["_do_heartbeat"]).parameters) == ["self"]
    assert list(inspect.signature(contact._originals["_do_rejoin_group"]).parameters) == [
        "self", "subscription"]
    assert list(inspect.signature(contact._originals["_send_sync_group_request"]).parameters) == [
        "self", "request"]
    assert "return response.member_assignment" in inspect.getsource(
        contact._originals["_send_sync_group_request"])  # None on every failure
    assert GroupCoordinator._do_heartbeat.__module__ == "app.kafka.contact"  # app.main installed
    assert CoordinatorGroupRebalance._send_sync_group_request.__module__ == "app.kafka.contact"

    answers = []

    async def heartbeat(self):
        await asyncio.sleep(0.05)  # the round trip: the send time is kept, not the answer's
        return answers.pop(0)

    async def rejoin(self, subscription):
        return answers.pop(0)

    async def sync(self, request):
        return answers.pop(0)

    monkeypatch.setitem(contact._originals, "_do_heartbeat", heartbeat)
    monkeypatch.setitem(contact._originals, "_do_rejoin_group", rejoin)
    monkeypatch.setitem(contact._originals, "_send_sync_group_request", sync)
    monkeypatch.setattr(contact, "last", None)
    ours, other = SimpleNamespace(group_id=app.conf.id), SimpleNamespace(group_id="a-tool")

    answers[:] = [False]
    assert await GroupCoordinator._do_heartbeat(ours) is False and contact.last is None
    answers[:] = [True]
    assert await GroupCoordinator._do_heartbeat(other) is True and contact.last is None
    before = time.monotonic()
    answers[:] = [True]
    assert await GroupCoordinator._do_heartbeat(ours) is True
    assert before <= contact.last <= before + 0.04
    first = contact.last
    answers[:] = [True]
    assert await GroupCoordinator._do_rejoin_group(ours, None) is True
    assert contact.last > first
    second = contact.last
    answers[:] = [None]  # a failed SyncGroup: no assignment, no confirmation
    assert await CoordinatorGroupRebalance._send_sync_group_request(ours, "req") is None
    assert contact.last == second
    answers[:] = [b"assignment"]  # an accepted one confirms the member when it was sent
    assert await CoordinatorGroupRebalance._send_sync_group_request(ours, "req") == b"assignment"
    assert contact.last > second
    answers[:] = [b"assignment"]
    third = contact.last
    assert await CoordinatorGroupRebalance._send_sync_group_request(other, "req") == b"assignment"
    assert contact.last == third
    contact.mark(first)  # an older confirmation never moves the clock back
    assert contact.last > first
    assert contact.in_contact(10.0)
    monkeypatch.setattr(contact, "last", time.monotonic() - 10.5)
    assert not contact.in_contact(10.0)
    monkeypatch.setattr(contact, "last", None)  # never a member: nothing to vouch for
    assert not contact.in_contact(10.0)
