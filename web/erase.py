"""``DELETE /v1/customers/{id}`` (``admin`` scope): audit, then queue an erase command.

It writes no state itself: the command is produced to the customer's partition and the
customers agent applies it in order after the customer's earlier events (tombstones in
both tables, a durable marker that cancels the webhooks created before it, see
``tables/erasures.py``). Before the command, an audit record (``app.observability.audit``: time, action,
target, the caller's key id) goes to ``audit``; the command is sent only once the broker
has it, so no erase happens unaudited. 202 once the broker has the command, with a
read-your-writes ``token`` of it: a read with ``?after=<token>`` answers once the erase is
applied (404, unless the customer has written again since); 503 if either is not
acknowledged (retry: an erase is idempotent, a retry adds one audit record).
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from app.consistency.positions import encode
from app.kafka.webview import View
from app.main import app
from app.observability import audit
from app.rules.events import erase_command
from app.topics import audit_topic, events_topic
from web.auth import KEY_ID_KEY, require
from web.responses import bad_customer_id

log = logging.getLogger(__name__)
TIMEOUT_S = 10


async def acked(topic, key: bytes, value: bytes):
    """Send one record and wait for the broker's acknowledgement (its metadata). A timeout
    leaves the producer's future alone (shielded), as ``web.ingest.produce`` explains."""
    return await asyncio.wait_for(asyncio.shield(await topic.send(key=key, value=value)),
                                  timeout=TIMEOUT_S)


@app.page("/v1/customers/{customer_id}")
class Customer(View):
    @require("admin")
    async def delete(self, request, customer_id):
        """Audit, then queue an erase command on ``events``: applied after earlier events."""
        bad = bad_customer_id(self, customer_id)
        if bad:
            return bad
        now = int(time.time() * 1000)
        command = erase_command(customer_id, now)
        entry = audit.record("erase", f"customer:{customer_id}", request.get(KEY_ID_KEY), now,
                             ref=command["event_id"])
        try:
            await acked(audit_topic, *entry)
            meta = await acked(events_topic, customer_id.encode(), orjson.dumps(command))
        except Exception as exc:  # broker down or slow: the caller must retry
            log.warning("erase of %s not queued: %r", customer_id, exc)
            return self.json({"error": "unavailable", "detail": "erase not queued"},
                             status=503, headers={"Retry-After": "1"})
        return self.json({"status": "erase queued", "customer_id": customer_id,
                          "event_id": command["event_id"],
                          "token": encode({meta.partition: meta.offset})}, status=202)
