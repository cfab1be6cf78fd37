"""The topics a worker creates on Apache Kafka, as the broker describes them: every one
exists once the worker is ready (Kafka here creates no topic on first use), with its
partition count, cleanup policy and retention. Tansu ignores these settings, so only Kafka
can answer."""
from __future__ import annotations

import pytest

from app.rules.window_kpis import WINDOWS
from app.settings import settings
from app.topics import RETENTION
from tests.support.topics import describe

pytestmark = [pytest.mark.e2e, pytest.mark.brokers("kafka")]

DAY_MS = 24 * 3600 * 1000


def test_every_topic_exists_with_its_partitions_policy_and_retention(broker, cluster):
    cluster.start()
    n = settings.partitions
    want = {  # topic: (partitions, cleanup.policy, retention.ms or None for the default)
        "events": (n, "delete", RETENTION["events"]),
        "webhook-deliveries": (n, "delete", RETENTION["webhook-deliveries"]),
        "events-dlq": (1, "delete", RETENTION["events-dlq"]),
        "webhooks-dlq": (1, "delete", RETENTION["webhooks-dlq"]),
        "audit": (1, "delete", RETENTION["audit"]),
        "persona-profiles-changelog": (n, "compact", None),
        "persona-sessions-changelog": (n, "compact", None),
        "persona-erasures-changelog": (n, "compact", None),
    }
    for window, (size_ms, keep) in WINDOWS.items():
        want[f"persona-kpis-{window}-changelog"] = (n, "compact,delete", size_ms * keep)
    found = describe(broker.bootstrap, sorted(want))
    assert sorted(found) == sorted(want), f"missing: {sorted(set(want) - set(found))}"
    for topic, (partitions, policy, retention) in want.items():
        got = found[topic]
        assert got["partitions"] == partitions, topic
        assert got["configs"]["cleanup.policy"] == policy, topic
        if retention is not None:
            ms = retention if isinstance(retention, int) else int(retention.total_seconds() * 1000)
            assert int(got["configs"]["retention.ms"]) == ms, topic
    # The policies above are what make compaction and retention real (the changelogs keep
    # one record per key; the windowed ones also drop what is past the KPI expiry).
    assert int(found["persona-kpis-1d-changelog"]["configs"]["retention.ms"]) == 90 * DAY_MS


def test_a_worker_with_another_partition_count_refuses_to_start(broker, cluster):
    """Existing 8-partition topics, a worker started with PERSONA_PARTITIONS=4: it exits with
    one line naming the setting and the topic, never serving a part of the data."""
    cluster.start()
    late = cluster.start(wait=False, env={"PERSONA_PARTITIONS": "4"})
    try:
        late.proc.wait(60)
    except Exception:
        pytest.fail(f"the worker kept running:\n{late.tail(20)}")
    assert late.proc.returncode == 2
    lines = [ln for ln in late.log.read_text().splitlines() if ln.startswith("persona: ")]
    assert len(lines) == 1, late.tail(20)
    assert lines[0].startswith("persona: PERSONA_PARTITIONS=4 but topic '")
    assert "has 8 partitions" in lines[0]


def test_topics_carry_the_replication_settings(broker, cluster):
    cluster.start()
    found = describe(broker.bootstrap, ["events", "persona-profiles-changelog", "audit"])
    for topic, got in found.items():
        assert got["replicas"] == 1 and got["configs"]["min.insync.replicas"] == "1", topic
