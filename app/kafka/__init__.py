"""Faust/Kafka plumbing: how every client logs in (``login``), and everything that leans on
private APIs, in one place, pinned to versions.

- ``internals``: small wrappers of private Faust attributes the agents and views need;
- ``workarounds``: patches for two faust-streaming races around rebalances;
- ``contact``: when the group coordinator last confirmed this worker's membership (the
  bounded-staleness rule, ``app.rules.staleness``);
- ``broker_compat``: true end offsets on the bundled broker (compatibility switch only);
- ``restore``: bulk restore of active changelog partitions (RocksDB store);
- ``fastpath``: bulk table writes (RocksDB WriteBatch + changelog records) for the
  customers agent's write-back flush;
- ``fenced``: the changelog producer those records go through, which delivers them within
  the write lease or never (no late writes from a worker cut off from the brokers);
- ``consume``: Faust's consumer loop without a task per message when none has to wait;
- ``handoff``, ``intake``: the ``events`` topic's records to the customers agent a fetched
  partition at a time, acked by offset ranges after the write-back's flush;
- ``fetch``: the worker consumer's fetch wait (Faust hard-codes 1500 ms);
- ``topic_check``: existing topics' partition counts (refuse) and replication (warn);
- ``webview``: the views' base class, whose dispatch skips Faust's per-request typing casts
  and in-process Monitor; and no CORS signal on every answer (Persona answers CORS itself).

``install(app, ...)`` checks the installed versions first. On other versions than the
ones written for, the worker refuses to start (one line, exit status 2) unless the operator
sets ``PERSONA_ALLOW_UNTESTED_VERSIONS=1``; then it logs an error, keeps the two race
workarounds, the group-contact clock and the broker shim, and leaves the speed-only paths (``restore``,
``consume``, ``handoff``, ``fastpath``, ``fetch``, ``webview``) off, so Faust's own generic paths do that
work; with them the write lease (``fenced``) is off too, and the docs say so.
"""
from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import version

log = logging.getLogger(__name__)

#: The versions every private API use in this package was written for and tested with.
WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def stop_at_start(line: str) -> None:
    """Print ``persona: <line>`` on the process's own stderr (Faust redirects ``sys.stderr``
    into its log) and end the process with status 2 at once, from any thread or task: for a
    mistake found while Faust starts, before anything was consumed."""
    os.write(2, f"persona: {line}\n".encode())
    os._exit(2)


def version_mismatches() -> dict:
    """``{distribution: installed}`` for each one that is not the version written for."""
    found = {name: version(name) for name in WRITTEN_FOR}
    return {name: v for name, v in found.items() if v != WRITTEN_FOR[name]}


def check_versions() -> bool:
    bad = version_mismatches()
    for name, installed in bad.items():
        log.error("app.kafka was written for %s==%s but %s is installed: its patches of "
                  "private APIs may not hold (see tests/agents/test_kafka_internals.py)",
                  name, WRITTEN_FOR[name], installed)
    return not bad


def install(app, local_broker_compat: bool, allow_untested: bool = False,
            fetch_max_wait_ms: int | None = None, fetch_min_bytes: int | None = None,
            partitions: int | None = None) -> bool:
    """Version gate, then the patches. Returns True if the speed-only paths are on.

    ``fetch_max_wait_ms``, ``fetch_min_bytes``: the worker consumer's fetch wait and
    minimum (None: Faust's 1500 ms, aiokafka's 1 byte)."""
    from app.kafka import (
        broker_compat,
        consume,
        contact,
        fastpath,
        fenced,
        fetch,
        handoff,
        restore,
        topic_check,
        webview,
        workarounds,
    )

    tested = check_versions()
    if not tested and not allow_untested:
        found = ", ".join(f"{n}=={v} (written for {WRITTEN_FOR[n]})"
                          for n, v in version_mismatches().items())
        print(f"persona: untested versions: {found}; app/kafka uses their private APIs. "
              "Install the pinned versions, or set PERSONA_ALLOW_UNTESTED_VERSIONS=1 to start "
              "with Faust's generic paths", file=sys.stderr, flush=True)
        raise SystemExit(2)
    workarounds.install(app)  # Faust races that skip events around rebalances
    contact.install(app)  # the group coordinator's last confirmation: bounded staleness
    if partitions is not None:
        topic_check.install(partitions)  # existing topics must match PERSONA_PARTITIONS
    fastpath.ENABLED = tested
    if tested:
        fenced.install()  # changelog records reach the broker within the write lease, or never
        restore.install()  # getmany + WriteBatch instead of one event per changelog record
        consume.install()  # no wait_first (4 futures + asyncio.wait) per message unless needed
        handoff.install()  # events: a fetched partition per unit, not a Faust event per record
        fetch.install(fetch_max_wait_ms, fetch_min_bytes)  # Faust hard-codes them
        webview.install(app)  # Persona's views: no typing casts, no Faust Monitor or CORS hook
    if local_broker_compat:
        broker_compat.install()  # true end offsets on the bundled broker (BROKER.md)
    return tested
