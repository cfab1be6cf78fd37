"""Existing topics checked against the settings as the worker declares them (private: Faust's
``Transport._create_topic`` and aiokafka's cluster metadata, pinned with the rest of app/kafka).

Faust creates a missing topic and silently takes an existing one as it is. A worker started
with ``PERSONA_PARTITIONS=4`` against 8-partition topics would then serve and count only part
of the data (seen: ``/v1/kpis`` reported 8 events where 882 were there). So once each topic is
declared (created or found), its partition count is compared with what the worker asked for:

- ``events``, the outbox and every changelog must have ``PERSONA_PARTITIONS`` partitions (so
  ``events`` and the outbox have the same count, which erase relies on). On a mismatch the
  worker exits at once with one line naming the setting and the topic: nothing has been
  consumed yet.
- A replication factor below ``PERSONA_REPLICATION_FACTOR`` is logged as a warning per topic,
  not refused: raising it on an existing deployment is a partition reassignment done with
  Kafka's own tools while the workers run, and refusing to start would turn that maintenance
  into an outage. ``persona_`` operators see it in the log at every start.
"""
from __future__ import annotations

import logging

from faust.transport.drivers.aiokafka import Transport

from app import kafka

log = logging.getLogger(__name__)


def partition_problem(topic: str, wanted: int, found: int, setting: int) -> str | None:
    """The one-line refusal for a topic whose partition count is not the setting's."""
    if wanted != setting or found == wanted:
        return None  # a one-partition topic (dead letters, audit, Faust's leader topic)
    return (f"PERSONA_PARTITIONS={setting} but topic {topic!r} has {found} partitions: a worker "
            f"would read and route only part of it. Set PERSONA_PARTITIONS={found}, or migrate "
            "to new topics")


def install(partitions: int) -> None:
    create = Transport._create_topic

    async def _create_then_check(self, owner, client, topic, wanted, replication, **kwargs):
        cluster = await create(self, owner, client, topic, wanted, replication, **kwargs)
        found = (cluster.partitions_for_topic(topic) or set()) if cluster is not None else set()
        if not found:  # not visible in time (the workaround warned): nothing to compare
            return
        problem = partition_problem(topic, wanted, len(found), partitions)
        if problem:
            kafka.stop_at_start(problem)  # from the consumer thread: nothing consumed yet
        copies = min((len(cluster._partitions[topic][p].replicas) for p in found),  # noqa: SLF001
                     default=replication)
        if copies < replication:
            log.warning("topic %r has %d replica(s) per partition, below "
                        "PERSONA_REPLICATION_FACTOR=%d: reassign its partitions with Kafka's "
                        "tools", topic, copies, replication)

    _create_then_check.wrapped = create
    Transport._create_topic = _create_then_check
