"""Every topic of the app. Keys and values are raw bytes: agents validate them themselves.

A shadow app (``app.consistency.shadow``) has its own copies of every topic but ``events``.
All are declared ``internal`` so Faust creates them (with these partition counts) when
they are missing. Faust creates the topics agents read and the changelogs as the worker
joins; the topics only written to (``OUTPUT_TOPICS``) are created by the worker at start
(``agents/runtime.py``): Kafka clusters commonly refuse to create a topic on first use
(``auto.create.topics.enable=false``, the rule on managed clusters and on the local Kafka).

Every topic has an explicit retention (``RETENTION``) rather than the broker's default, so
what is kept does not depend on whose cluster it is: changelogs are Faust's
(``compact``; windowed KPI tables ``compact,delete`` with their expiry as retention).
"""
import asyncio
import base64
from datetime import timedelta

import orjson

from app.consistency.shadow import own_topic
from app.main import TOPIC_CONFIG, app
from app.settings import settings

#: Retention per topic (``retention.ms``, cleanup ``delete``). ``events``: a week, enough
#: to re-fold after an outage or replay into a shadow app (the state itself lives in the
#: compacted changelogs, for ever); the outbox: a week, far past the longest retry; the
#: dead-letter topics: 30 days for an operator to look and redrive; ``audit``: a year.
RETENTION = {
    "events": timedelta(days=7),
    "webhook-deliveries": timedelta(days=7),
    "events-dlq": timedelta(days=30),
    "webhooks-dlq": timedelta(days=30),
    "audit": timedelta(days=365),
}


def _raw_topic(name: str, partitions: int, kind: str):
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions, internal=True,
                     retention=RETENTION[kind], deleting=True, config=dict(TOPIC_CONFIG))


#: Header on ``events`` records that came in through ``POST /v1/events`` with a publishable
#: (browser) key: the agent lets them follow a merged anonymous id only briefly
#: (``app.rules.alias.follows``). A header, not a field: no client can set or clear it.
SOURCE_HEADER = "persona-source"
BROWSER_SOURCE = b"publishable"

#: Shop events and internal commands (erase, session_timeout); key = customer_id (utf-8),
#: JSON envelope value.
events_topic = _raw_topic("events", settings.partitions, "events")

#: Events that failed validation: {"reason", "errors", "raw" (original bytes, utf-8 or base64)}.
events_dlq = _raw_topic(own_topic("events-dlq", settings.shadow), 1, "events-dlq")


def dlq_record(raw: bytes, reason: str, errors: dict, source: dict, now_ms: int) -> bytes:
    """One ``events-dlq`` record: why, the field errors, the raw bytes (UTF-8 text when they
    are, else base64) and where they came from (a topic position, or an HTTP request)."""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return orjson.dumps({"reason": reason, "errors": errors, "raw": text,
                         "raw_encoding": encoding, "source": source, "failed_at": now_ms},
                        option=orjson.OPT_NON_STR_KEYS)

#: Webhook outbox: one delivery request per (trigger, subscription); key = customer_id, JSON
#: value (see app/webhooks/formats.py). Written by agents/customers.py, consumed by
#: agents/webhooks.py. Same partition count as ``events``, so Faust's assignor gives
#: partition p of both (and of the ``erasures`` table) to the same worker.
webhook_deliveries = _raw_topic(own_topic("webhook-deliveries", settings.shadow),
                                settings.partitions, "webhook-deliveries")

#: Deliveries that failed for good: {"delivery", "error", "status", "attempts", ...};
#: ``persona-redrive`` sends them back to webhook-deliveries.
webhooks_dlq = _raw_topic(own_topic("webhooks-dlq", settings.shadow), 1, "webhooks-dlq")

#: Admin actions (erase, redrive), one small JSON record each (app/observability/audit.py); key = target.
#: One partition: a single ordered log. Never compact it (keys repeat).
audit_topic = _raw_topic("audit", 1, "audit")

#: Written, never read by an agent: created at start by ``declare_outputs``.
OUTPUT_TOPICS = (events_dlq, webhooks_dlq, audit_topic)
#: Set once ``declare_outputs`` has created (or found) every output topic; ``/ready`` waits.
outputs_declared = asyncio.Event()


async def declare_outputs() -> None:
    """Create the output topics that do not exist yet, with their settings."""
    for topic in OUTPUT_TOPICS:
        await topic.maybe_declare()
    outputs_declared.set()


def partition_of(topic: str, key: bytes):
    """The partition the default partitioner gives ``key`` (None if metadata is unknown).

    Used to check an event's partition and to route a read to the key's owner. Faust's
    producer-side ``key_partition`` lacks metadata for topics not produced to yet.
    """
    partition = _partition_cache.get((topic, key))
    if partition is None:
        partition = app.consumer.key_partition(topic, key)
        if partition is not None:
            if len(_partition_cache) > 100_000:
                _partition_cache.clear()
            _partition_cache[(topic, key)] = partition
    return partition


# murmur2 in pure Python costs more than the rest of a routing check; a topic's
# partition count only changes with a planned migration (which needs a restart).
_partition_cache: dict = {}
