"""Pins app.kafka.fenced: the changelog producer whose records reach the broker within the
write lease or never (docs/consistency.md, "Writes: the write lease").

The wrapped aiokafka sources are pinned by hash; the socket options are read back from a
real connection; the expired-batch drop runs the wrapper on the sender's own state.
"""
from __future__ import annotations

import hashlib
import inspect
import socket
import struct
from types import SimpleNamespace

import faust.transport.drivers.aiokafka as faust_aiokafka
import pytest
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.sender import Sender

from app.kafka import fenced
from app.main import app

SOURCES = {  # sha256 of inspect.getsource in aiokafka 0.12 / faust-streaming 0.15.3
    "connect": "b0f9ba7f0cf6b432c387480060970d41ba1a9df9883064efbbb33fbdb4366b81",
    "_send_produce_req": "aea01ae4b6c794cc153598ced2d7bc44e5eec2b5407b876bf7535244478446ee",
}


def digest(fn) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()


def test_the_wrapped_aiokafka_sources_are_the_ones_it_was_written_for():
    assert AIOKafkaConnection.connect.__module__ == "app.kafka.fenced"  # app.main installed
    assert Sender._send_produce_req.__module__ == "app.kafka.fenced"
    assert {name: digest(fn) for name, fn in fenced._originals.items()} == SOURCES
    # the settings the changelog producer copies from Faust's
    assert digest(faust_aiokafka.Producer._settings_default) == (
        "9c39987fb719e98422344bbfa087257103b158e9851cc16f7f04e6d3ebcc49a9")


@pytest.mark.brokers("tansu")
async def test_a_changelog_producers_socket_closes_without_lingering_and_gives_up_unacked_bytes(
        broker, monkeypatch):
    host, port = broker.bootstrap.split(",")[0].rsplit(":", 1)
    monkeypatch.setattr(fenced, "CLIENT_IDS", {"persona-test-changelog": 1000})
    options = {}
    for client_id in ("persona-test-changelog", "persona-test"):
        conn = AIOKafkaConnection(host, int(port), client_id=client_id,
                                  request_timeout_ms=1000)
        await conn.connect()  # a real broker: connect asks it for its API versions
        sock = conn._writer.get_extra_info("socket")
        options[client_id] = (
            struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
        conn.close()
    assert options == {"persona-test-changelog": ((1, 0), 1000),  # the request timeout
                       "persona-test": ((0, 0), 0)}  # any other client: the kernel's defaults


class Batch:
    def __init__(self, expired: bool):
        self._expired, self.error = expired, None

    def expired(self) -> bool:
        return self._expired

    def failure(self, exception) -> None:
        self.error = exception


async def test_its_sender_fails_a_batch_that_expired_while_waiting_instead_of_sending_it():
    sent = []

    async def original(self, node_id, batches):
        sent.append(dict(batches))

    stale, fresh = Batch(expired=True), Batch(expired=False)
    fenced.CLIENT_IDS["persona-test-changelog"] = 1000
    sender = SimpleNamespace(client=SimpleNamespace(_client_id="persona-test-changelog"),
                             _muted_partitions={"tp-stale", "tp-fresh"}, _in_flight={1})
    wrapped = Sender._send_produce_req
    saved = fenced._originals["_send_produce_req"]
    fenced._originals["_send_produce_req"] = original
    try:
        await wrapped(sender, 1, {"tp-stale": stale, "tp-fresh": fresh})
        assert isinstance(stale.error, KafkaTimeoutError) and fresh.error is None
        assert sent == [{"tp-fresh": fresh}] and sender._muted_partitions == {"tp-fresh"}
        await wrapped(sender, 1, {"tp-stale": Batch(expired=True)})  # nothing left to send
        assert len(sent) == 1 and sender._in_flight == set()
        other = SimpleNamespace(client=SimpleNamespace(_client_id="faust"),
                                _muted_partitions=set(), _in_flight={2})
        await wrapped(other, 2, {"tp": Batch(expired=True)})  # Faust's producer: untouched
        assert len(sent) == 2
    finally:
        fenced._originals["_send_produce_req"] = saved
        fenced.CLIENT_IDS.pop("persona-test-changelog", None)


def test_the_changelog_producer_takes_a_tenth_of_the_session_for_a_request():
    assert fenced.lease(app).request_s == app.conf.broker_session_timeout / 10
    assert fenced.lease(app).lease_s == app.conf.broker_session_timeout / 2
