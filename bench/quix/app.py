"""Quix Streams: the same pure rules as Persona, written the way Quix's docs show it.

``python -m bench.quix.app --broker HOST:PORT --state-dir DIR --count N``
(``bench.quix.ingest``). A contender Persona's engine is measured against on the same
events and broker (``bench.run``, ``--skip quix``): one ``StreamingDataFrame`` over the
``events`` topic with one stateful ``update`` that validates each raw value with Persona's
``parse`` (the same work as Persona's validation, so Quix is not handed pre-parsed JSON)
and folds it into the customer's session and profile with ``apply_to_session`` and
``apply_to_profile``, each written to Quix's key-scoped state when it changed. The state
lives in Quix's RocksDB store with its changelog topic (Quix's defaults); the consumer
group is ``persona-quix``, reading from the earliest offset; the message key (the
customer id) scopes the state, as Persona's tables are keyed. The benchmark passes the
group timers it gives Persona's workers (``--consumer``: session and heartbeat; without
them the first group join on the bundled broker takes ~25 s instead of ~7 s).

Erase commands delete both keys; ``session_timeout`` commands (the abandoned-cart scan; not
in the benchmark's events) are out of its scope, as are webhooks, the outbox, KPIs and any
HTTP API. Invalid events are counted and dropped (no dead-letter topic).

Quix checkpoints (commits offsets and sends the changelog) every ``commit_interval``
seconds, with no flush when the input runs dry, so the last events would wait up to that
interval. The benchmark knows how many events it produced, so the run stops after
``--count`` messages (``Application.run(count=...)``), which commits the last checkpoint
at once. Two lines on stdout give the benchmark its marks: ``quix-bench first-event wall=
cpu=`` when the first event arrives (the start of the measured window: time and this
process's CPU seconds), and ``quix-bench done`` after the final commit; the process then
waits for SIGTERM so its CPU can still be read from ``/proc`` (stopped by a signal before
the count, it just exits).
"""
from __future__ import annotations

import argparse
import os
import signal
import time

from quixstreams import Application

from app.rules import profile_state, session_state
from app.rules.events import ERASE, SESSION_TIMEOUT, InvalidEvent, parse
from bench.quix import GROUP, MARK, TOPIC


class Fold:
    """The stateful ``update`` callback: one event into the customer's two state keys."""

    def __init__(self, idle_ms: int):
        self.idle_ms = idle_ms
        self.invalid = 0
        self.seen = 0

    def __call__(self, raw: bytes, state) -> None:
        self.seen += 1
        if self.seen == 1:  # the first event marks the start of the measured window
            t = os.times()
            print(f"{MARK} first-event wall={time.time():.6f} cpu={t.user + t.system:.3f}",
                  flush=True)
        try:
            ev = parse(raw)
        except InvalidEvent:
            self.invalid += 1
            return
        if ev["type"] == ERASE:
            state.delete("session")
            state.delete("profile")
            return
        if ev["type"] == SESSION_TIMEOUT:
            return
        old_session, old_profile = state.get("session"), state.get("profile")
        session = session_state.apply_to_session(old_session, ev, self.idle_ms)
        profile = profile_state.apply_to_profile(old_profile, ev, session, self.idle_ms)
        if session is not old_session:
            state.set("session", session)
        if profile is not old_profile:
            state.set("profile", profile)


def build(broker: str, state_dir: str, fold: Fold, consumer: dict | None = None) -> Application:
    """``consumer``: librdkafka settings over Quix's (the benchmark's group timers)."""
    app = Application(broker_address=broker, consumer_group=GROUP,
                      auto_offset_reset="earliest", state_dir=state_dir,
                      consumer_extra_config=consumer)
    events = app.topic(TOPIC, key_deserializer="bytes", value_deserializer="bytes")
    app.dataframe(events).update(fold, stateful=True)
    return app


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True, help="bootstrap HOST:PORT")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--count", type=int, required=True, help="stop after this many events")
    p.add_argument("--idle-s", type=float, default=1800.0, help="session idle time (s)")
    p.add_argument("--consumer", action="append", default=[], metavar="NAME=VALUE",
                   help="a librdkafka consumer setting, e.g. session.timeout.ms=10000")
    a = p.parse_args(argv)
    fold = Fold(int(a.idle_s * 1000))
    consumer = dict(c.split("=", 1) for c in a.consumer)
    build(a.broker, a.state_dir, fold, consumer).run(count=a.count, collect=False)
    if fold.seen < a.count:  # stopped by a signal before the end: nothing to measure
        return
    print(f"{MARK} done wall={time.time():.6f} invalid={fold.invalid}", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Quix's handler only stops its loop
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
