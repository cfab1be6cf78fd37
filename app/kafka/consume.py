"""Faust's consumer loop without a task per message when nothing needs to wait.

``Consumer._drain_messages`` (faust-streaming 0.15.3) hands each fetched message to the
conductor with ``await self.wait_first(callback(message), self.suspend_flow.wait())``:
four futures and an ``asyncio.wait`` per message (~50 µs), so that a delivery that blocks
(a full stream buffer) can be given up when the flow is suspended for a rebalance. Most
deliveries never block. ``deliver`` runs the callback eagerly up to its first real
suspension: finished by then, no task at all; suspended, the rest of the same coroutine
becomes a task and goes through ``wait_first`` exactly as in Faust. When the flow is
already suspended, or the consumer is stopping or crashed, it is Faust's path from the
start (there ``wait_first`` may give the delivery up before it runs).

``install`` replaces ``Consumer._drain_messages`` by ``drain_messages``: Faust's loop with
that one line changed. ``ORIGINAL_SHA256`` pins the source it was copied from
(tests/agents/test_consume.py fails when an upgrade changes it).
"""
from __future__ import annotations

import asyncio
import types
from typing import Any, AsyncIterator, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from mode import Service

#: sha256 of ``inspect.getsource(Consumer._drain_messages)`` in faust-streaming 0.15.3.
ORIGINAL_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
_original = Consumer._drain_messages


@types.coroutine
def _rest(coro, awaited):
    """Drive ``coro`` on from where it suspended (on ``awaited``), as a task would."""
    while True:
        try:
            sent = yield awaited
        except BaseException as exc:  # cancellation included: hand it to the coroutine
            step, arg = coro.throw, exc
        else:
            step, arg = coro.send, sent
        try:
            awaited = step(arg)
        except StopIteration as stop:
            return stop.value


async def _finish(coro, awaited) -> Any:
    return await _rest(coro, awaited)


async def deliver(consumer, callback, message) -> None:
    """``consumer.wait_first(callback(message), suspend_flow.wait())``, eagerly."""
    suspend = consumer.suspend_flow
    coro = callback(message)
    if suspend.is_set() or consumer._stopped.is_set() or consumer._crashed.is_set():
        await consumer.wait_first(coro, suspend.wait())
        return
    try:
        awaited = coro.send(None)
    except StopIteration:
        return
    await consumer.wait_first(_finish(coro, awaited), suspend.wait())


async def drain_messages(self, fetcher) -> None:  # pragma: no cover
    # Faust 0.15.3's Consumer._drain_messages; only the wait_first line differs.
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(AsyncIterator, getmany(timeout=1.0))
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        await deliver(self, callback, message)  # the changed line
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                     offset, message.key, message.value)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def install() -> None:
    Consumer._drain_messages = drain_messages
