"""Fixtures: a real Tansu broker per test module and real ``faust worker`` processes.

In-process tests (pure and agent tests) use Faust's in-memory store; the worker
processes started here always use RocksDB.
"""
from __future__ import annotations

import os

os.environ["PERSONA_STORE"] = "memory://"  # before any app module reads settings
os.environ.setdefault("PERSONA_API_KEYS", "test-admin:admin,test-read:read,test-ingest:ingest")

import pytest  # noqa: E402

from app.local import Broker  # noqa: E402

API_KEYS = "test-admin:admin,test-read:read,test-ingest:ingest"
ADMIN, READ, INGEST = "test-admin", "test-read", "test-ingest"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(log=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield b
    b.stop()


@pytest.fixture
def cluster(broker, tmp_path):
    """Start workers with ``cluster.start()``; all are stopped at the end of the test."""
    from tests.support.cluster import Cluster

    c = Cluster(broker, tmp_path, api_keys=API_KEYS)
    yield c
    c.stop_all()


#: User property under which a test reports how many generated cases it ran
#: (tests/e2e/test_schemathesis.py); the total is printed at the end of the run.
CASES_PROPERTY = "schemathesis_cases"


def pytest_terminal_summary(terminalreporter):
    """Print the schemathesis case count (user properties come back from xdist workers too)."""
    seen, total = set(), 0
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == CASES_PROPERTY and report.nodeid not in seen:
                    seen.add(report.nodeid)
                    total += value
    if seen:
        terminalreporter.write_line(f"schemathesis: {total} cases in {len(seen)} tests")
