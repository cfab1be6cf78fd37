"""events -> validate -> sessions + profiles tables; invalid events -> events-dlq.

The agent only wires the stream to the pure rules in ``app.rules.session_state`` and
``app.rules.profile_state`` and writes the results back. It never raises on bad input:
anything that fails validation is parked on ``events-dlq`` with the reason and the
original bytes, and the partition moves on.

Events are taken in batches: each customer's new state is computed event by event
with the pure rules and written back once per batch (fewer changelog records, one
RocksDB write per table), before the batch's offsets are acked.

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

from app.kafka.internals import as_current_event, drain_producer
from app.main import app
from app.rules import profile_state, session_state, triggers
from app.rules.events import ERASE, SESSION_TIMEOUT, InvalidEvent, parse
from app.settings import settings
from app.topics import events_dlq, events_topic, partition_of, webhook_deliveries
from app.webhooks import formats
from tables.documents import encode, read
from tables.profiles import profiles
from tables.sessions import sessions

log = logging.getLogger(__name__)
SUBSCRIPTIONS = settings.webhooks  # validated by app.settings before the worker starts


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




async def to_outbox(records: list) -> None:
    """Send outbox records and wait until the broker has them all."""
    futures = [await webhook_deliveries.send(key=key, value=value) for key, value in records]
    if futures:
        await asyncio.gather(*futures)


async def dead_letter(event, reason: str, errors: dict) -> None:
    message = event.message
    log.info("dead-lettering event at %s[%s]@%s: %s", message.topic, message.partition,
             message.offset, reason)
    await events_dlq.send(key=message.key,
                          value=dlq_record(event.value, reason, errors, message))


class Pending:
    """One customer's state while a batch is applied; written back once at its end."""

    __slots__ = ("session", "profile", "event", "dirty_session", "dirty_profile", "erased")

    def __init__(self, cid: str):
        self.session, self.profile = read(sessions, cid), read(profiles, cid)
        self.event = None
        self.dirty_session = self.dirty_profile = self.erased = False


def apply_event(p: Pending, ev: dict, idle_ms: int, outbox: list) -> None:
    """Apply one valid event to a customer's pending state (pure rules + triggers)."""
    cid = ev["customer_id"]
    if ev["type"] == ERASE:
        if SUBSCRIPTIONS:  # cancels this customer's pending deliveries (agents/webhooks.py)
            outbox.append(formats.erase_marker(cid, int(time.time() * 1000)))
        p.session = p.profile = None
        p.erased, p.dirty_session, p.dirty_profile = True, False, False
        return
    if ev["type"] == SESSION_TIMEOUT:  # from the abandoned-cart scan; never touches the profile
        new_session, fired = triggers.on_session_timeout(p.session, ev, idle_ms)
        outbox.extend(outbox_requests(ev, fired))
        if new_session is not p.session:
            p.session, p.dirty_session = new_session, True
        return
    new_session = session_state.apply_to_session(p.session, ev, idle_ms)
    new_profile = profile_state.apply_to_profile(p.profile, ev, new_session)
    if SUBSCRIPTIONS:
        fired = triggers.triggered(p.session, new_session, p.profile, new_profile, ev, idle_ms)
        outbox.extend(outbox_requests(ev, fired))
    # A redelivered event changes nothing, but after a kill -9 the local RocksDB can hold
    # state whose changelog record was never sent: write it again so the changelog (and
    # any worker restoring from it) catches up.
    redelivered = p.profile is not None and ev["event_id"] in p.profile["event_ids"]
    if new_session is not p.session or (redelivered and new_session is not None):
        p.session, p.dirty_session = new_session, True
    if new_profile is not p.profile or redelivered:
        p.profile, p.dirty_profile = new_profile, True


def outbox_requests(ev: dict, fired: list) -> list:
    if not (fired and SUBSCRIPTIONS):
        return []
    return formats.delivery_requests(SUBSCRIPTIONS, ev, fired, int(time.time() * 1000))


def write_back(cid: str, p: Pending) -> None:
    """Write one customer's final state of the batch (one changelog record per table).

    Faust sends a table write to the changelog partition of the *current* event; in a
    batch that is the last event of the batch, so make it this customer's last event.
    """
    with as_current_event(p.event):
        for table, value, dirty in ((sessions, p.session, p.dirty_session),
                                    (profiles, p.profile, p.dirty_profile)):
            if value is not None and dirty:
                table[cid] = encode(value)
            elif value is None and p.erased:
                # Tombstone even if the key is already gone here: after a crash the local
                # store can be ahead of the changelog; the redelivered command repairs it.
                try:
                    del table[cid]
                except KeyError:
                    pass


# A 500-event batch takes a few hundred ms of CPU: hand the loop to the web views (and
# heartbeats) every YIELD_EVERY events so lookups stay fast while ingesting.
YIELD_EVERY = 25


async def process_batch(batch, idle_ms: int) -> None:
    pending: dict[str, Pending] = {}
    outbox: list = []
    for i, event in enumerate(batch):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        try:
            ev = parse(event.value)
            cid = ev["customer_id"]
            if misrouted(event.message, cid):
                # Re-key: the copy lands in the customer's partition and is processed there.
                await events_topic.send(key=cid.encode(), value=event.value)
                continue
            p = pending.get(cid) or pending.setdefault(cid, Pending(cid))
            apply_event(p, ev, idle_ms, outbox)
            p.event = event
        except InvalidEvent as exc:
            await dead_letter(event, exc.reason, exc.errors)
        except Exception as exc:  # a bug must not stall the partition: park the event
            log.exception("processing failed; dead-lettering the event")
            await dead_letter(event, "processing failed", {"_error": [repr(exc)]})
    # Webhooks first: once the broker has them, a crash before the table writes only
    # redelivers the events, which fire the same triggers again (same webhook-id).
    await to_outbox(outbox)
    for i, (cid, p) in enumerate(pending.items()):
        if p.event is not None:
            write_back(cid, p)  # both tables, no yield in between: reads see both or neither
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
    await changelog_durable()


async def changelog_durable() -> None:
    """Wait until the broker has every changelog record of the batch.

    The batch's offsets are acked (and may be committed) when this returns. Faust's own
    pre-commit flush gives up after 0.1 s without progress, so under load a commit could
    otherwise run ahead of the changelog and a crash would lose those updates.
    """
    producer = app.producer
    if producer.state != "running":  # Faust's agent test context has no producer
        return
    await drain_producer(producer)


@app.agent(events_topic, concurrency=1)
async def process_events(stream):
    """Events in batches (up to BATCH_MAX or BATCH_WITHIN_S); acked after the writes."""
    idle_ms = settings.session_idle_ms
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
        await process_batch(batch, idle_ms)
