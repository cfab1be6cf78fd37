"""The changelog producer: a worker's table writes reach the broker in time, or never.

A worker cut off from the brokers (or paused) keeps its unwritten state. Had its changelog
records gone through Faust's producer, they would wait there (Faust gives a request 20
minutes) and land when the link came back, after the records of the worker that took the
partitions over: the next restore would take them for the newest. The write lease of
``app.rules.staleness`` prevents that, and this module enforces its limits:

- the write-back flush (``fastpath.send_changelog``) hands a record batch over only while
  the lease holds (``wait_lease``), and gives up (``Fenced``) once a rebalance comes while
  it does not, or a stop once the session has surely ended: the caller then drops what it has not written and forgets its
  held events without acknowledging them, so nothing of it is committed;
- the records go through a producer of their own (``producer``), whose requests, batches and
  connects last at most ``request_s``;
- its sender fails a batch that expired while it waited (aiokafka checks expiry only after a
  failed attempt; a paused process would send it on waking up): ``install``;
- its sockets close without lingering (``SO_LINGER`` 0: the kernel drops what it had not
  sent) and give up bytes unacknowledged for ``unacked_s`` (``TCP_USER_TIMEOUT``), so a
  request cut off in flight is not retransmitted once the link returns.

Pinned by ``tests/agents/test_fenced.py`` (the sources it wraps).
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time

import aiokafka
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.sender import Sender

from app.kafka import contact
from app.rules.staleness import may_write, write_lease

#: Client ids of changelog producers -> their lease's ``unacked_s`` (ms): only their
#: connections and senders are changed.
CLIENT_IDS: dict = {}
#: Lease poll while waiting for contact to return.
POLL_S = 0.05
_originals: dict = {}
_producers: dict = {}  # app id -> (AIOKafkaProducer, the future of its start)
_stopping_connected: list = []  # app ids whose shutdown stops their changelog producer


class Fenced(Exception):
    """The write lease ended and the group is changing (or the worker is stopping): what
    is not written yet must not be written by this worker."""


def lease(app):
    return write_lease(float(app.conf.broker_session_timeout))


def leased(app) -> bool:
    return may_write(contact.last, time.monotonic(), float(app.conf.broker_session_timeout))


async def wait_lease(app) -> None:
    """Return once the lease holds. Raise ``Fenced`` if a rebalance comes first (the rejoin
    after a cut revokes first, and no heartbeat is accepted before it), or if the worker is
    stopping and its session has surely ended (heartbeats go on while a stop waits for the
    flush, so a worker in contact gets its lease back within a heartbeat)."""
    while not leased(app):
        bound_s = float(app.conf.broker_session_timeout)
        if app.rebalancing or (app.should_stop and not contact.in_contact(bound_s)):
            age = None if contact.last is None else round(time.monotonic() - contact.last, 1)
            raise Fenced(f"no group contact for {age} s (write lease {lease(app).lease_s} s)")
        await asyncio.sleep(POLL_S)


async def producer(app) -> aiokafka.AIOKafkaProducer:
    """This app's changelog producer, started on first use (Faust's producer settings:
    brokers, credentials, acks, compression; its own client id and timeouts). A start that
    fails (no broker reachable: the first flush may come during a cut) raises aiokafka's
    error and is tried afresh on the next call."""
    entry = _producers.get(app.conf.id)
    if entry is None:
        faust_producer = app.producer
        settings = {**faust_producer._settings_default(), **faust_producer._settings_auth(),
                    **faust_producer._settings_extra()}
        limits = lease(app)
        client_id = f"{settings.get('client_id') or 'persona'}-changelog"
        CLIENT_IDS[client_id] = max(1, int(limits.unacked_s * 1000))
        settings.update(client_id=client_id, request_timeout_ms=int(limits.request_s * 1000),
                        enable_idempotence=False, transactional_id=None)
        made = aiokafka.AIOKafkaProducer(**settings)
        entry = _producers[app.conf.id] = (made, asyncio.ensure_future(made.start()))
        if app.conf.id not in _stopping_connected:
            app.on_before_shutdown.connect(_stop_on_shutdown)
            _stopping_connected.append(app.conf.id)
    made, started = entry
    try:
        await asyncio.shield(started)
    except Exception:
        if _producers.get(app.conf.id) is entry:
            del _producers[app.conf.id]
            await made.stop()
        raise
    return made


async def _stop_on_shutdown(sender, **kwargs) -> None:
    """Faust's own producer flushes after the consumer stopped; this one too."""
    entry = _producers.pop(sender.conf.id, None)
    if entry is not None:
        await entry[0].stop()


def _tcp_options(conn, unacked_ms: int) -> None:
    sock = conn._writer.get_extra_info("socket") if conn._writer is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, unacked_ms)


def install() -> None:
    """Wrap aiokafka's connect and produce-request sending for changelog producers (once)."""
    if _originals:
        return
    _originals["connect"] = AIOKafkaConnection.connect
    _originals["_send_produce_req"] = Sender._send_produce_req

    async def connect(self):
        result = await _originals["connect"](self)
        if self._client_id in CLIENT_IDS:
            _tcp_options(self, CLIENT_IDS[self._client_id])
        return result

    async def _send_produce_req(self, node_id, batches):
        if self.client._client_id in CLIENT_IDS:
            for tp in [tp for tp, batch in batches.items() if batch.expired()]:
                batches.pop(tp).failure(exception=KafkaTimeoutError())
                self._muted_partitions.discard(tp)
            if not batches:
                self._in_flight.discard(node_id)
                return None
        return await _originals["_send_produce_req"](self, node_id, batches)

    AIOKafkaConnection.connect = connect
    Sender._send_produce_req = _send_produce_req


def uninstall() -> None:
    """Put aiokafka's methods back (tests)."""
    if _originals:
        AIOKafkaConnection.connect = _originals.pop("connect")
        Sender._send_produce_req = _originals.pop("_send_produce_req")
