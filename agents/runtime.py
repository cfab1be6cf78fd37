"""Worker-wide runtime set-up that needs the running worker: the output topics, the
garbage-collector policy.

The output topics (``app.topics.OUTPUT_TOPICS``: dead letters, audit) are created at start:
no agent reads them, so Faust would not, and a Kafka cluster that does not create topics on
first use would leave every write to them waiting. ``/ready`` waits for it.

``app.observability.gc_policy`` (PERSONA_GC, read by ``app.settings``): its thresholds as the worker
starts, full-collection pauses into ``persona_gc_full_seconds``, and the start-up objects
frozen once the tables are recovered (what a worker builds until then lives as long as it
does). A task, not import-time code: the CLI tools and tests that import the app keep
CPython's own policy.
"""
from __future__ import annotations

import logging

from app.main import app
from app.observability import gc_policy, metrics
from app.settings import settings
from app.topics import declare_outputs

log = logging.getLogger(__name__)


def _record_full(seconds: float) -> None:
    metrics.GC_FULL_SECONDS.observe(seconds)  # looked up per call: PERSONA_METRICS=off


@app.task
async def create_output_topics() -> None:
    await declare_outputs()


@app.task
async def tune_gc() -> None:
    gc_policy.configure(settings.gc)
    gc_policy.observe(_record_full)
    await app.tables.recovery.completed.wait()
    frozen = gc_policy.freeze_startup(settings.gc)
    log.info("gc policy %s: %d start-up objects frozen, thresholds %s", settings.gc, frozen,
             gc_policy.gc.get_threshold())
