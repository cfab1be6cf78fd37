"""Naive Faust: the same pure rules as Persona, written the way Faust's docs show it.

``faust -A bench.naive.app worker --web-port PORT`` (``bench.procs.NaiveWorker``). The
contender Persona's engine is measured against on the same events (``bench.run``,
``--skip naive``): one plain per-event agent (``async for value in stream``), two Faust
Tables with Faust's default ``json`` value serializer on the RocksDB store, one table write
per changed value (Faust sends one changelog record per write), the same partitions, its
own app id (``persona-naive``: own consumer group and changelog topics). None of
Persona's levers: no batches, no write-back, no bulk flush or restore, no consume loop
patch. What it shares with a Persona worker: the rules, the event loop (uvloop, same
``faust worker`` command line) and, with ``PERSONA_LOCAL_BROKER_COMPAT=1``, the bundled
broker's compatibility settings (group timers 10 s/10 s/1 s and ``app.kafka.broker_compat``,
true end offsets; it imports nothing else of Persona's Faust plumbing).

Erase commands delete both tables' keys; ``session_timeout`` commands (the abandoned-cart
scan; not in the benchmark's events) and webhooks are out of its scope. Invalid events are
counted and dropped (no dead-letter topic). ``GET /ready``: 200 once recovery is done and
no rebalance runs (what the benchmark polls).
"""
from __future__ import annotations

import logging
import os

import faust
from faust.web import View

from app.rules import profile_state, session_state
from app.rules.events import ERASE, SESSION_TIMEOUT, InvalidEvent, parse

log = logging.getLogger(__name__)
ENV = os.environ
PARTITIONS = int(ENV.get("PERSONA_PARTITIONS", "8"))
PORT = int(ENV.get("PORT", "6066"))
COMPAT = ENV.get("PERSONA_LOCAL_BROKER_COMPAT", "0") == "1"
IDLE_MS = int(float(ENV.get("SESSION_IDLE_S", "1800")) * 1000)

options = {}
if COMPAT:  # the bundled broker's group timers (as app.main.faust_options)
    options.update(broker_rebalance_timeout=10.0, broker_session_timeout=10.0,
                   broker_heartbeat_interval=1.0)
    from app.kafka import broker_compat

    broker_compat.install()

app = faust.App(
    "persona-naive",
    broker=ENV.get("KAFKA_BROKER_URL", "kafka://127.0.0.1:19092"),
    store=ENV.get("PERSONA_STORE", "rocksdb://"),
    datadir=ENV.get("PERSONA_DATA_DIR", f"data/naive-{PORT}"),
    topic_partitions=PARTITIONS,
    web_port=PORT,
    **options,
)
events = app.topic("events", key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw", partitions=PARTITIONS)
sessions = app.Table("sessions", default=None, key_type=str, partitions=PARTITIONS)
profiles = app.Table("profiles", default=None, key_type=str, partitions=PARTITIONS)
invalid = 0


@app.agent(events)
async def process(stream):
    global invalid
    async for value in stream:
        try:
            ev = parse(value)
        except InvalidEvent:
            invalid += 1
            continue
        cid = ev["customer_id"]
        if ev["type"] == ERASE:
            for table in (sessions, profiles):
                if cid in table:
                    del table[cid]
            continue
        if ev["type"] == SESSION_TIMEOUT:
            continue
        old_session, old_profile = sessions.get(cid), profiles.get(cid)
        session = session_state.apply_to_session(old_session, ev, IDLE_MS)
        profile = profile_state.apply_to_profile(old_profile, ev, session)
        if session is not old_session:
            sessions[cid] = session
        if profile is not old_profile:
            profiles[cid] = profile


@app.page("/ready")
class Ready(View):
    async def get(self, request):
        ready = app.tables.recovery.completed.is_set() and not app.rebalancing
        body = {"ready": ready, "invalid_events": invalid}
        return self.json(body, status=200 if ready else 503)
