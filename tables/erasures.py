"""customer_id -> erase marker (``app.webhooks.erasure``): durable cancellation of webhooks.

Written only by the customers agent, in ``events`` order, when it applies an erase
command, to the changelog partition of that command (``as_current_event``): the same
partition number as the customer's ``events`` and ``webhook-deliveries`` partitions, which
Faust's assignor gives to one worker together (same partition count, same subscribers).
So the delivery agent reads the marker of any request it holds from its own local store,
and a worker that takes a partition over restores the markers before it consumes.

``remember`` writes the batch's markers and waits until the broker has their changelog
records *before* the customers agent sends the batch's outbox requests or writes its
states: once an erase has had any effect, its marker survives a kill -9 (the erase
command's offset is committed even later, after the write-back flush). Markers are never
deleted (README "Erasure").
"""
from __future__ import annotations

from typing import Optional

from app.consistency import failpoints
from app.kafka.internals import as_current_event, drain_producer
from app.main import app
from app.webhooks import erasure
from tables.documents import document_table, encode, read

erasures = document_table("erasures", help="customer_id -> erase marker (pos, erased_at)")


def marker_of(customer_id: str) -> Optional[dict]:
    return read(erasures, customer_id)


def cancelled(record: dict) -> bool:
    """True if an erase stored here cancels this outbox request (created before it)."""
    cid = record.get("customer_id")
    return isinstance(cid, str) and erasure.cancels(marker_of(cid), record)


async def remember(markers: list) -> None:
    """Store ``[(marker, record)]`` (never moving a marker back) and make them durable."""
    if not markers:
        return
    for new, record in markers:
        cid = new["customer_id"]
        kept = erasure.merged(marker_of(cid), new)
        with as_current_event(record):
            erasures[cid] = encode(kept)
    producer = app.producer
    if producer.state == "running":  # Faust's agent test context has no producer
        await drain_producer(producer)
    failpoints.hit("erase.after_marker")
