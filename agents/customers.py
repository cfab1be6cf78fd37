"""events -> validate -> sessions + profiles tables; invalid events -> events-dlq.

The agent only wires the stream to the pure rules in ``app.session_state`` and
``app.profile_state`` and writes the results back. It never raises on bad input:
anything that fails validation is parked on ``events-dlq`` with the reason and the
original bytes, and the partition moves on.

Webhooks: after deciding the new states, the agent puts one delivery request per
(trigger, matching subscription) on the ``webhook-deliveries`` outbox (``app.webhooks``)
and waits for the broker's acknowledgement *before* writing the tables, so a crash in
between redelivers the event against the old state and the trigger fires again (same
``webhook-id``). It never calls HTTP itself: agents/webhooks.py delivers.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time

import orjson

from app import profile_state, session_state, webhooks
from app.events import ERASE, SESSION_TIMEOUT, InvalidEvent, parse
from app.main import app
from app.settings import settings
from app.topics import events, events_dlq, webhook_deliveries
from tables.profiles import profiles
from tables.sessions import sessions

log = logging.getLogger(__name__)
SUBSCRIPTIONS = webhooks.configured()  # a bad PERSONA_WEBHOOKS stops the worker at start


def dlq_record(raw: bytes, reason: str, errors: dict, message) -> bytes:
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return orjson.dumps({
        "reason": reason,
        "errors": errors,
        "raw": text,
        "raw_encoding": encoding,
        "source": {"topic": message.topic, "partition": message.partition,
                   "offset": message.offset},
        "failed_at": int(time.time() * 1000),
    })


def misrouted(message, customer_id: str) -> bool:
    """True if the message is not in the partition its customer_id hashes to.

    Tables write to the partition of the message being processed, and lookups go to
    the partition of the key, so both must agree.
    """
    key = customer_id.encode()
    if message.key != key:
        return True
    partition = partition_of(message.topic, key)
    return partition is not None and partition != message.partition


def partition_of(topic: str, key: bytes):
    """The partition the default partitioner gives ``key`` (None if metadata is unknown)."""
    return app.consumer.key_partition(topic, key)


def erase(customer_id: str) -> None:
    for table in (sessions, profiles):
        # Tombstone even if the key is already gone here: after a crash the local
        # store can be ahead of the changelog, and the redelivered command repairs it.
        try:
            del table[customer_id]
        except KeyError:
            pass


async def to_outbox(records: list) -> None:
    """Send outbox records and wait until the broker has them all."""
    futures = [await webhook_deliveries.send(key=key, value=value) for key, value in records]
    if futures:
        await asyncio.gather(*futures)


async def notify(ev: dict, fired: list) -> None:
    if fired and SUBSCRIPTIONS:
        now = int(time.time() * 1000)
        await to_outbox(webhooks.delivery_requests(SUBSCRIPTIONS, ev, fired, now))


async def dead_letter(event, reason: str, errors: dict) -> None:
    message = event.message
    log.info("dead-lettering event at %s[%s]@%s: %s", message.topic, message.partition,
             message.offset, reason)
    await events_dlq.send(key=message.key,
                          value=dlq_record(event.value, reason, errors, message))


async def handle(event, idle_ms: int) -> None:
    ev = parse(event.value)
    cid = ev["customer_id"]
    if misrouted(event.message, cid):
        # Re-key: the copy lands in the customer's partition and is processed there.
        await events.send(key=cid.encode(), value=event.value)
        return
    if ev["type"] == ERASE:
        if SUBSCRIPTIONS:  # cancels this customer's pending deliveries (agents/webhooks.py)
            await to_outbox([webhooks.erase_marker(cid, int(time.time() * 1000))])
        erase(cid)
        return
    session = sessions.get(cid)
    if ev["type"] == SESSION_TIMEOUT:  # from the abandoned-cart scan; never touches the profile
        new_session, fired = webhooks.on_session_timeout(session, ev, idle_ms)
        await notify(ev, fired)
        if new_session is not session:
            sessions[cid] = new_session
        return
    new_session = session_state.apply(session, ev, idle_ms)
    profile = profiles.get(cid)
    new_profile = profile_state.apply(profile, ev, new_session)
    if SUBSCRIPTIONS:
        await notify(ev, webhooks.triggers(session, new_session, profile, new_profile, ev, idle_ms))
    # A redelivered event changes nothing, but after a kill -9 the local RocksDB can hold
    # state whose changelog record was never sent: write it again so the changelog (and
    # any worker restoring from it) catches up.
    redelivered = profile is not None and ev["event_id"] in profile["event_ids"]
    if new_session is not session or (redelivered and session is not None):
        sessions[cid] = new_session
    if new_profile is not profile or redelivered:
        profiles[cid] = new_profile


@app.agent(events, concurrency=1)
async def process_events(stream):
    idle_ms = settings.session_idle_ms
    async for event in stream.events():
        try:
            await handle(event, idle_ms)
        except InvalidEvent as exc:
            await dead_letter(event, exc.reason, exc.errors)
        except Exception as exc:  # a bug must not stall the partition: park the event
            log.exception("processing failed; dead-lettering the event")
            await dead_letter(event, "processing failed", {"_error": [repr(exc)]})
