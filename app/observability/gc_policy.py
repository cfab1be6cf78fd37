"""The worker's garbage-collector policy (``PERSONA_GC``: ``tuned``, the default, or ``default``).

Why: CPython's cycle collector scans every tracked object in a full (generation 2)
collection. A worker keeps many objects alive for seconds: the write-back holds up to
``PERSONA_FLUSH_INTERVAL_S`` of events and their customers' documents, and the read cache
holds more documents. None of them is garbage. This was measured at 4,000 events/s
live on the bundled broker, with CPython's thresholds (700, 10, 10):
- a full collection ran every 1-2 s;
- each took 0.26-0.44 s of the worker's one core (~350k tracked objects);
- each freed nothing ("collected 0");
- together they were ~20 % of the worker's time, so the backlog grew (freshness p99 2-3.5 s
  at 80 % of max).

``tuned``:
- the thresholds become (700, ``GEN1_THRESHOLD``, ``GEN2_THRESHOLD``): generation-0
  collections run as before (the short-lived cycles of asyncio futures and exceptions are
  freed as soon as before); a generation-1 collection runs after 5 of them instead of 10,
  so each scans half as many survivors (new customer documents, which live until their
  flush): at most ~2.3 ms instead of ~3.7 ms, the same total; and a full one runs after
  ``GEN2_THRESHOLD`` generation-1 collections, as often as 1,000 did with 10. CPython
  also still waits until the long-lived objects grew by 25 %;
- once the worker has started (tables recovered), ``freeze_startup`` runs one full collection,
  then ``gc.freeze()``. What exists by then (modules, classes, Faust's app and services)
  lives as long as the process and is never scanned again.
Long-lived cyclic garbage then waits ~100× longer to be freed; memory stays bounded because
full collections still run.

``default`` keeps CPython's own policy: for comparison, or for a workload whose long-lived
objects form cycles that must be freed sooner.

``observe`` feeds ``persona_gc_full_seconds`` (``app.observability.metrics``: one observation per full
collection) so an operator sees these pauses. The callback is called for every collection,
young ones included, and only times the full ones.
"""
from __future__ import annotations

import gc
import time
from typing import Mapping

VARIABLE = "PERSONA_GC"
MODES = ("tuned", "default")
#: Full collections after this many generation-1 collections (CPython: 10). 100 (with 10
#: generation-0 collections per generation-1 one) still gave a full collection every ~20-30 s
#: while ingesting, each holding the loop for 60-100 ms (lookups waited behind it); with
#: 1000, one every few minutes, and the worker's resident memory was the same after 90 s of
#: ingest and lookups (661-720 MB against 666-721). 2000 with ``GEN1_THRESHOLD`` 5 keeps that.
GEN2_THRESHOLD = 2000
#: Generation-1 collections after this many generation-0 ones (CPython: 10). Every one held
#: the loop 2-3.7 ms while ingesting at 2,700 events/s with lookups, the most common long
#: wait of a lookup left (26 of 86 loop stalls over 4 ms in 12 s); with 5, at most 2.3 ms.
GEN1_THRESHOLD = 5


def gc_mode(env: Mapping[str, str]) -> str:
    """PERSONA_GC, validated: ``tuned`` (default, also when empty) or ``default``."""
    raw = env.get(VARIABLE, "").strip().lower() or "tuned"
    if raw not in MODES:
        raise ValueError(f"{VARIABLE} must be tuned or default, got {env.get(VARIABLE)!r}")
    return raw


def configure(mode: str) -> tuple:
    """Set the thresholds for ``mode`` at worker start; returns the previous ones."""
    previous = gc.get_threshold()
    if mode == "tuned":
        gc.set_threshold(previous[0], GEN1_THRESHOLD, GEN2_THRESHOLD)
    return previous


def freeze_startup(mode: str) -> int:
    """``tuned``: one full collection, then keep everything alive out of later scans.
    Returns how many objects are frozen (0 with ``default``)."""
    if mode != "tuned":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class FullCollections:
    """A ``gc.callbacks`` entry timing full collections into ``record(seconds)``."""

    def __init__(self, record):
        self.record, self.started = record, None

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.record(time.perf_counter() - self.started)
            self.started = None


def observe(record) -> FullCollections:
    """Install (once per ``record``'s caller) a callback that times full collections."""
    callback = FullCollections(record)
    gc.callbacks.append(callback)
    return callback
