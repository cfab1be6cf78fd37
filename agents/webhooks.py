"""webhook-deliveries -> signed POST, retries -> webhooks-dlq; and the abandoned-cart scan.

Delivery (``deliver``): an agent with ``concurrency=PERSONA_WEBHOOK_CONCURRENCY`` actors
sharing the outbox stream, so up to N deliveries are in flight per worker and a slow or
dead subscriber holds at most the actors working on its own requests. Each actor finishes
one request (delivered, parked on ``webhooks-dlq``, or cancelled by an erase) before it
takes the next, and Faust commits an outbox offset only when every earlier offset of the
partition is acked: at-least-once, a crash redelivers with the same ``webhook-id``.

A rebalance or shutdown waits for every in-flight event (Faust ``stream_wait_empty``), and
retries may take minutes, so an actor that sees the flow stop gives its request back:
it re-sends it to the outbox (attempts so far, ``not_before`` = the planned next attempt),
waits for the broker's acknowledgement, and only then lets the event be acked.

Erase: the customers agent stores a durable marker per erased customer in the
``erasures`` table (``tables/erasures.py``), whose partitions sit on the worker that
consumes the same outbox partitions. Before every attempt (and before parking) a request
is checked against it: one created before the erase is dropped, whether it is new, in a
retry loop, re-read after a crash, or redriven from ``webhooks-dlq`` (the owner decides,
``persona-redrive`` does not need to know). ``{"type": "erase"}`` records that older
versions put on the outbox are skipped.

Abandoned carts (``scan_idle_carts``): a timer on every worker reads the sessions of its
active partitions and, for each idle session with an open cart not yet notified, sends a
``session_timeout`` command on ``events``; the customers agent (the only table writer)
re-checks, marks the session and emits ``cart.abandoned``.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson

from app.main import app
from app.observability import metrics
from app.rules import triggers
from app.settings import settings
from app.topics import events_topic, webhook_deliveries, webhooks_dlq
from app.webhooks import formats, policy, signing
from tables.documents import read
from tables.erasures import cancelled
from tables.sessions import sessions

log = logging.getLogger(__name__)
SUBSCRIPTIONS = {s.id: s for s in settings.webhooks}  # validated by app.settings
WANTS_ABANDONED = any(triggers.CART_ABANDONED in s.events for s in SUBSCRIPTIONS.values())
POLL_S = 0.2
_commands: dict = {}  # customer_id -> (command event_id, monotonic time sent)


class Interrupted(Exception):
    """The flow stopped (rebalance or shutdown): hand the request back."""


def now_ms() -> int:
    return int(time.time() * 1000)


def flow_stopped() -> bool:
    return bool(app.should_stop) or not app.flow_control.is_active()


async def interruptible(aw):
    task = asyncio.ensure_future(aw)
    try:
        while not task.done():
            if flow_stopped():
                raise Interrupted()
            await asyncio.wait({task}, timeout=POLL_S)
        return task.result()
    finally:
        if not task.done():
            task.cancel()


async def produce(topic, key: bytes, value: bytes) -> None:
    await (await topic.send(key=key, value=value))  # acknowledged by the broker


async def post(sub, record: dict) -> tuple:
    """One attempt: (status or None, error text, Retry-After header)."""
    body = formats.body(record)
    headers = signing.headers(sub.secret, record["webhook_id"], body)
    try:
        async with app.http_client.post(
                sub.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=sub.timeout_s)) as resp:
            await resp.content.read(65536)  # the answer body is not used; bounded read
            return resp.status, f"HTTP {resp.status}", resp.headers.get("Retry-After")
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}".rstrip(": "), None


async def park(record: dict, error: str, status, attempts: int) -> None:
    log.warning("webhook %s (%s -> %s) parked on webhooks-dlq after %d attempt(s): %s",
                record.get("webhook_id"), record.get("kind"), record.get("subscription_id"),
                attempts, error)
    key = str(record.get("customer_id", "")).encode()
    await produce(webhooks_dlq, key, formats.dlq_entry(record, error, status, attempts, now_ms()))


def outcome(record: dict, what: str, attempts: int = 0) -> None:
    metrics.webhook_done(metrics.subscription(record.get("subscription_id"), SUBSCRIPTIONS),
                         what, attempts, record.get("created_at"))


def dropped(record: dict) -> bool:
    """True (and counted) if an erase cancels this request: it must not leave Persona."""
    if not cancelled(record):
        return False
    log.info("webhook %s dropped: customer erased", record.get("webhook_id"))
    outcome(record, "cancelled_erased")
    return True


async def deliver_one(record: dict) -> None:
    attempts = record.get("attempts", 0)
    if dropped(record):
        return
    sub = SUBSCRIPTIONS.get(record["subscription_id"])
    if sub is None:
        await park(record, "unknown subscription (not configured)", None, attempts)
        return outcome(record, "dead_lettered", attempts)
    wake_at = record.get("not_before", 0) / 1000
    while True:
        try:
            if wake_at > time.time():
                await interruptible(asyncio.sleep(wake_at - time.time()))
            if dropped(record):
                return
            status, error, retry_after = await interruptible(post(sub, record))
        except Interrupted:
            log.info("webhook %s handed back to the outbox (rebalance/shutdown)",
                     record["webhook_id"])
            again = {**record, "attempts": attempts, "not_before": int(wake_at * 1000)}
            await produce(webhook_deliveries, record["customer_id"].encode(),
                          orjson.dumps(again))
            return outcome(record, "handed_back")
        attempts += 1
        result = policy.classify(status)
        if result == policy.OK:
            log.info("webhook %s delivered to %s (attempt %d)", record["webhook_id"], sub.id,
                     attempts)
            return outcome(record, "delivered", attempts)
        if result == policy.GIVE_UP or attempts >= settings.webhook_max_attempts:
            if dropped(record):  # erased while this attempt ran: nothing to park
                return
            if status == 410:
                log.warning("subscription %s answered 410 Gone: permanent failure", sub.id)
            await park(record, error, status, attempts)
            return outcome(record, "dead_lettered", attempts)
        outcome(record, "retried")
        delay = policy.retry_after_s(retry_after, settings.webhook_backoff_max_s) \
            if status == 429 else None
        if delay is None:
            delay = policy.backoff_delay(attempts, settings.webhook_backoff_s,
                                           settings.webhook_backoff_max_s)
        log.info("webhook %s attempt %d to %s failed (%s); retry in %.2fs",
                 record["webhook_id"], attempts, sub.id, error, delay)
        wake_at = time.time() + delay


@app.agent(webhook_deliveries, concurrency=settings.webhook_concurrency)
async def deliver(stream):
    async for event in stream.events():
        try:
            record = orjson.loads(event.value)
            if record.get("type") != "erase":  # older versions' erase markers: skipped
                await deliver_one(record)
        except Exception as exc:  # a bug or a malformed record must not stall the partition
            log.exception("webhook delivery failed; parking the request")
            try:
                record = orjson.loads(event.value)
            except orjson.JSONDecodeError:
                record = {"raw": event.value.decode("utf-8", "replace")}
            await park(record, f"processing failed: {exc!r}", None, record.get("attempts", 0))
            outcome(record, "dead_lettered")


@app.timer(interval=settings.abandon_check_s)
async def scan_idle_carts() -> None:
    if not WANTS_ABANDONED or app.rebalancing or not app.tables.recovery.completed.is_set():
        return
    now, idle_ms, sent = now_ms(), settings.session_idle_ms, 0
    forget = time.monotonic() - 3 * max(settings.abandon_check_s, 1.0)
    for cid in [c for c, (_, at) in _commands.items() if at < forget]:
        del _commands[cid]
    try:
        for i, cid in enumerate(list(sessions.keys())):  # active partitions only (RocksDB)
            if i % 500 == 499:
                await asyncio.sleep(0)
                if app.rebalancing:
                    return
            session = read(sessions, cid)
            if not (triggers.abandonable(session) and triggers.idle(session, now, idle_ms)):
                continue
            command = triggers.timeout_command(session, now)
            if _commands.get(cid, (None,))[0] == command["event_id"]:
                continue  # sent recently, not processed yet
            await events_topic.send(key=cid.encode(), value=orjson.dumps(command))
            _commands[cid] = (command["event_id"], time.monotonic())
            sent += 1
    except Exception:  # e.g. partitions revoked during the scan: the next scan retries
        log.exception("abandoned-cart scan failed")
    if sent:
        log.info("abandoned-cart scan: %d session_timeout command(s) sent", sent)
