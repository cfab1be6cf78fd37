"""``DELETE /v1/customers/{id}`` (``admin`` scope): queue an erase command on ``events``.

It writes nothing itself: the command is produced to the customer's partition and the
customers agent applies it in order after the customer's earlier events (tombstones in
both tables, pending webhooks cancelled). 202 once the broker has the command, with a
read-your-writes ``token`` of it: a read with ``?after=<token>`` answers once the erase is
applied (404, unless the customer has written again since).
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson
from faust.web import View

from app.main import app
from app.positions import encode
from app.rules.events import erase_command
from app.topics import events_topic
from web.auth import require
from web.responses import bad_customer_id

log = logging.getLogger(__name__)


@app.page("/v1/customers/{customer_id}")
class Customer(View):
    @require("admin")
    async def delete(self, request, customer_id):
        """Queue an erase command on ``events``: applied in order after earlier events."""
        bad = bad_customer_id(self, customer_id)
        if bad:
            return bad
        command = erase_command(customer_id, int(time.time() * 1000))
        try:
            fut = await events_topic.send(key=customer_id.encode(), value=orjson.dumps(command))
            meta = await asyncio.wait_for(fut, timeout=10)
        except Exception as exc:  # broker down or slow: the caller must retry
            log.warning("erase of %s not queued: %r", customer_id, exc)
            return self.json({"error": "unavailable", "detail": "erase not queued"},
                             status=503, headers={"Retry-After": "1"})
        return self.json({"status": "erase queued", "customer_id": customer_id,
                          "event_id": command["event_id"],
                          "token": encode({meta.partition: meta.offset})}, status=202)
