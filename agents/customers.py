"""events -> validate -> sessions + profiles tables; invalid events -> events-dlq.

The agent only wires the stream to the pure rules in ``app.rules.session_state`` and
``app.rules.profile_state`` and writes the results back. It never raises on bad input:
anything that fails validation is parked on ``events-dlq`` with the reason and the
original bytes, and the partition moves on.

Events are taken in batches: each customer's new state is computed event by event
with the pure rules and handed to the write-back (``agents/writeback.py``) once per
batch; it writes each changed customer once per flush interval, and the events' offsets
are acked only after that flush has made their states durable. Each event's contribution to
the windowed business KPIs (``agents/kpis.py``) is summed per batch beside the states and
written first in the same flush.

Webhooks: after deciding the new states, the agent puts one delivery request per
(trigger, matching subscription) on the ``webhook-deliveries`` outbox (``app.webhooks``)
and waits for the broker's acknowledgement *before* the states enter the write-back, so a crash in
between redelivers the event against the old state and the trigger fires again (same
``webhook-id``). It never calls HTTP itself: agents/webhooks.py delivers. Each request
carries ``source``, the position of the event that created it. An erase command leaves a
marker at its own position in ``tables/erasures.py``, durable before anything else of its
batch, which cancels every request created before it (``app.webhooks.erasure``).

What one event or internal command (``erase``, ``session_timeout``, ``reconcile``) does to
one customer, and redeliveries told by position, is ``agents/customer_state.py``.

Aliases (``agents/aliases.py``): an ``alias`` is handled at its anonymous id's partition,
whose logged and later events are forwarded to the customer with the outbox.
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from agents import aliases, kpis
from agents.customer_state import Pending, apply_event, decided
from agents.writeback import WriteBack
from app.consistency import applied
from app.kafka import intake
from app.main import app
from app.observability import metrics
from app.rules.events import InvalidEvent, key_of, parse
from app.settings import settings
from app.topics import dlq_record, events_dlq, events_topic, partition_of, webhook_deliveries
from tables import erasures
from tables.profiles import profiles
from tables.sessions import sessions

log = logging.getLogger(__name__)


def misrouted(record, customer_id: str) -> bool:
    """True if the record is not in the partition its customer_id hashes to.

    Tables write to the partition of the record being processed, and lookups go to
    the partition of the key, so both must agree.
    """
    key = customer_id.encode()
    if record.key != key:
        return True
    partition = partition_of(record.topic, key)
    return partition is not None and partition != record.partition


async def to_outbox(records: list, forwards: list = ()) -> None:
    """Send outbox records and events forwarded to an alias (``agents.aliases``), and wait
    until the broker has them all."""
    futures = [await webhook_deliveries.send(key=key, value=value) for key, value in records]
    if not settings.shadow:  # a shadow app takes the live app's forwarded copies instead
        futures += [await events_topic.send(key=ev["customer_id"].encode(),
                                            value=orjson.dumps(ev)) for ev in forwards]
    if futures:
        await asyncio.gather(*futures)


async def dead_letter(record, reason: str, errors: dict) -> None:
    log.info("dead-lettering event at %s[%s]@%s: %s", record.topic, record.partition,
             record.offset, reason)
    await events_dlq.send(key=record.key,
                          value=dlq_record(record.value, reason, errors, {
                              "topic": record.topic, "partition": record.partition,
                              "offset": record.offset}, int(time.time() * 1000)))


# A 500-event batch takes ~40-80 ms of CPU: hand the loop to the web views (and heartbeats)
# after SLICE_S of it, so lookups stay fast while ingesting. By count it was every 25 events
# (~4 ms: lookup p99 10.3-10.4 ms while ingesting), then 10 (8.5-8.8 ms); by time the slice
# does not grow with a costlier event or a slower machine.
SLICE_S = 0.0005


async def process_batch(records: list, acks: list, idle_ms: int) -> None:
    """Apply a batch of records (``app.kafka.intake``); ``acks`` acknowledge them once the
    write-back's flush has made their states durable."""
    started = time.perf_counter()
    pending: dict[str, Pending] = {}
    outbox: list = []
    forwards: list = []  # events of merged anonymous ids, for the identified customer
    outcomes: list = []  # (outcome, type, reason) per event, counted once per batch
    stamps: dict = {}  # partition -> Kafka timestamps (ms) of its events that reached the state
    kpi_items: list = []  # per event taken for a customer: its windowed-KPI contribution
    clock = time.perf_counter
    slice_end = started + SLICE_S
    wait = state.open
    for record in records:
        if clock() >= slice_end or not wait.is_set():  # not during a flush's write steps
            await state.pause()
            slice_end = clock() + SLICE_S
        try:
            ev = parse(record.value)
            cid = key_of(ev)  # the anonymous id for an alias
            p = pending.get(cid)  # its first record of the batch was checked already
            if p is None or record.partition != p.partition or record.key != p.key:
                if misrouted(record, cid):
                    # Re-key: the copy lands in the customer's partition, processed there
                    # (a shadow app leaves that to the live app and takes the live copy).
                    if not settings.shadow:  # its headers too: where it came in from
                        await events_topic.send(key=cid.encode(), value=record.value,
                                                headers=list(record.headers or ()))
                    outcomes.append((metrics.REKEYED, ev["type"], ""))
                    continue
                if p is None:
                    p = pending[cid] = Pending(cid, record.partition, record.key)
            handled, forwarded, conflict = aliases.handle(p, ev, record)
            if handled:  # an alias, or an event of a merged anonymous id
                if conflict:
                    field = "anonymous_id" if ev["type"] == "alias" else "customer_id"
                    await dead_letter(record, aliases.reason(ev), {field: [conflict]})
                else:
                    forwards.extend(forwarded)
                    p.record = record
                outcomes.append(aliases.outcome(ev, conflict))
                continue
            before = p.session, p.profile
            duplicate = apply_event(p, ev, idle_ms, outbox, record)
            kpi_items.append(kpis.item(record, ev, before, p.session, p.profile, duplicate))
            p.record = record
            outcomes.append((metrics.DUPLICATE if duplicate else metrics.APPLIED, ev["type"], ""))
            stamped = stamps.get(record.partition)
            if stamped is None:
                stamped = stamps[record.partition] = []
            stamped.append(record.timestamp)
        except InvalidEvent as exc:
            await dead_letter(record, exc.reason, exc.errors)
            outcomes.append(dead_lettered(exc.reason))
        except Exception as exc:  # a bug must not stall the partition: park the event
            log.exception("processing failed; dead-lettering the event")
            await dead_letter(record, "processing failed", {"_error": [repr(exc)]})
            outcomes.append(dead_lettered("processing failed"))
    # Erase markers first (durable before anything else of the batch), then webhooks:
    # once the broker has them, a crash before the table writes only redelivers the
    # events, which fire the same triggers again (same webhook-id).
    await erasures.remember([(p.marker, p.record) for p in pending.values() if p.marker])
    await to_outbox(outbox, forwards)
    await enter(pending, kpi_items, acks, stamps)
    record_batch(outcomes, stamps, len(records), started)


#: Per step while a batch's results go in: KPI items folded, customers' states put (each
#: ~0.4 ms). All at once they held the loop 2.5-5 ms per 500-event batch: the longest
#: wait of a lookup while ingesting.
KPI_STEP = 200
PUT_STEP = 100


async def enter(pending: dict, kpi_items: list, acks: list, stamps: dict) -> None:
    """A batch's KPI rows, its customers' states and its acks go in together for any
    flush (``WriteBack.entering``), with the loop handed to reads between steps. A
    cancellation (a stopping worker) waits until they are all in: half a batch's states
    with all its KPI rows would count the other half twice once redelivered."""
    cancelled = None

    async def step() -> None:
        nonlocal cancelled
        if cancelled is None:
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                cancelled = exc

    state.entering()
    try:
        for start in range(0, len(kpi_items), KPI_STEP):
            kpi_rows.add_batch(kpi_items[start:start + KPI_STEP])  # in offset order
            await step()
        n = 0
        for cid, p in pending.items():
            if p.record is not None:
                state.put(cid, decided(p), p.record)
                n += 1
                if n % PUT_STEP == 0:
                    await step()
        state.add_events(acks, stamps)  # acked once the next flush has made them durable
        applied.applied.advance(acks)  # readable now: wakes reads waiting for these offsets
    finally:
        state.entered()
    if cancelled is not None:
        raise cancelled


def dead_lettered(reason: str) -> tuple:
    return metrics.DEAD_LETTERED, metrics.dead_letter_type(reason), metrics.dlq_reason(reason)


def seconds(stamps: dict) -> list:
    """Kafka timestamps (ms) of ``{partition: [ms]}`` as epoch seconds."""
    return [t / 1000 for times in stamps.values() for t in times if t is not None]


def record_batch(outcomes: list, stamps: dict, size: int, started: float) -> None:
    """Per batch, not per event: one increment per label set, one histogram pass."""
    metrics.count_events(outcomes)  # a no-op with PERSONA_METRICS=off: no Counter built
    metrics.FRESHNESS.observe_ages(seconds(stamps), "readable")
    metrics.BATCH_SIZE.observe(size)
    metrics.BATCH_SECONDS.observe(time.perf_counter() - started)


FLUSH_TICK_S = 0.05
kpi_rows = kpis.KpiRows()
state = WriteBack(app, (sessions, profiles), settings.flush_interval_s, settings.flush_max_keys,
                  first=kpi_rows)
applied.install(app, events_topic.get_topic_name())  # reads wait on applied.applied


@app.on_partitions_revoked.connect
async def drop_caches_on_revoke(sender, *args, **kwargs) -> None:
    state.drop_caches()  # after Faust waited for the streams: the flush is done


@app.on_partitions_assigned.connect
async def drop_caches_on_assign(sender, *args, **kwargs) -> None:
    state.drop_caches()


@app.task
async def flush_state() -> None:
    """Flush when due, beside the agent: it goes on taking batches while a flush writes
    (a flush of ~4k customers takes 0.3-1.4 s at 3,000 events/s; when the agent awaited
    it, events waited that long: freshness p99 0.7-0.95 s). The agent itself flushes only
    when ``flush_max_keys`` customers wait. Also when no events arrive (quiet input,
    rebalance, shutdown).

    Not an ``app.timer``: Faust's timers end as soon as the worker starts stopping, and a
    graceful stop waits (``Consumer.wait_empty``) for the held events, so for a flush.
    Faust cancels this task after that wait (``App.on_stop`` runs before its futures stop).
    """
    while True:
        await asyncio.sleep(FLUSH_TICK_S)
        await state.flush_if_due()


@app.agent(events_topic, concurrency=1)
async def process_events(stream):
    """Records in batches (up to BATCH_MAX or BATCH_WITHIN_S), a partition's fetched records
    handed over at once (``app.kafka.intake``); acked after the flush."""
    idle_ms = settings.session_idle_ms
    async for records, acks in intake.batches(stream, settings.batch_max,
                                              settings.batch_within_s):
        await process_batch(records, acks, idle_ms)
        if state.full():  # else flush_state flushes while the agent goes on
            await state.flush_if_due()
