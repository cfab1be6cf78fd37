"""Pins app.kafka.consume: Faust's consumer loop, delivering without a task per message."""
from __future__ import annotations

import asyncio
import hashlib
import inspect
from types import SimpleNamespace

from faust.transport.consumer import Consumer

from app.kafka import consume
from app.main import app  # noqa: F401  (app.kafka.install runs on import)


def test_the_copied_loop_is_the_installed_faust_one_with_the_patch_installed():
    source = inspect.getsource(consume._original)
    assert hashlib.sha256(source.encode()).hexdigest() == consume.ORIGINAL_SHA256
    assert source.count("await self.wait_first(") == 1  # the one line drain_messages changes
    assert Consumer._drain_messages is consume.drain_messages  # app.kafka.install ran


def fake_consumer(suspended=False):
    calls = []

    async def wait_first(*coros):
        calls.append(len(coros))
        coros[1].close()  # the suspend_flow waiter
        return await coros[0]

    flag = asyncio.Event()
    if suspended:
        flag.set()
    return SimpleNamespace(suspend_flow=flag, _stopped=asyncio.Event(),
                           _crashed=asyncio.Event(), wait_first=wait_first), calls


async def test_a_delivery_that_does_not_block_needs_no_wait_first():
    consumer, calls = fake_consumer()
    got = []

    async def callback(message):
        got.append(message)

    await consume.deliver(consumer, callback, "m1")
    assert got == ["m1"] and calls == []


async def test_a_delivery_that_blocks_finishes_under_wait_first():
    consumer, calls = fake_consumer()
    gate, got = asyncio.get_running_loop().create_future(), []

    async def callback(message):
        got.append(("start", message))
        got.append(("value", await gate))
        await asyncio.sleep(0)
        return "done"

    task = asyncio.ensure_future(consume.deliver(consumer, callback, "m2"))
    await asyncio.sleep(0.01)
    assert got == [("start", "m2")] and calls == [2]  # suspended: handed to wait_first
    gate.set_result(42)
    await task
    assert got == [("start", "m2"), ("value", 42)]


async def test_a_blocked_delivery_given_up_is_cancelled_inside_the_callback():
    consumer, _ = fake_consumer()
    cancelled = []

    async def callback(message):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(message)
            raise

    task = asyncio.ensure_future(consume.deliver(consumer, callback, "m3"))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cancelled == ["m3"]


async def test_when_flow_is_suspended_it_is_faust_path_from_the_start():
    consumer, calls = fake_consumer(suspended=True)
    got = []

    async def callback(message):
        got.append(message)

    await consume.deliver(consumer, callback, "m4")
    assert calls == [2] and got == ["m4"]
