"""Fixtures: a real broker per test module and real ``faust worker`` processes.

Every module that uses the ``broker`` fixture runs on Apache Kafka (one KRaft node from Maven
Central, ``app.harness.kafka``). A module marked ``pytest.mark.brokers("tansu", "kafka")``
runs once on each (the bundled broker is what ``make run`` uses); ``brokers("tansu")`` runs
only on the bundled broker (its compatibility switch). The test id names the broker
(``test_x[kafka]``). A broker that cannot be had fails the test: never a silent skip.

In-process tests (pure and agent tests) use Faust's in-memory store; the worker
processes started here always use RocksDB.
"""
from __future__ import annotations

import os

os.environ["PERSONA_STORE"] = "memory://"  # before any app module reads settings
os.environ.setdefault("PERSONA_API_KEYS", "test-admin-0123456789:admin,test-read-0123456789:read,test-ingest-0123456789:ingest")

import pytest  # noqa: E402

from app.harness.cluster import Broker  # noqa: E402

API_KEYS = "test-admin-0123456789:admin,test-read-0123456789:read,test-ingest-0123456789:ingest"
ADMIN, READ, INGEST = "test-admin-0123456789", "test-read-0123456789", "test-ingest-0123456789"


DEFAULT_BROKERS = ("kafka",)


def pytest_configure(config):
    config.addinivalue_line("markers", "brokers(*kinds): the brokers a module's e2e tests run "
                            "on (default: kafka)")


def pytest_generate_tests(metafunc):
    if "broker" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("brokers")
        kinds = marker.args if marker else DEFAULT_BROKERS
        metafunc.parametrize("broker", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def broker(request, tmp_path_factory):
    b = Broker(log=tmp_path_factory.mktemp(f"broker-{request.param}") / "broker.log",
               kind=request.param).start()
    yield b
    b.stop()


@pytest.fixture
def cluster(broker, tmp_path):
    """Start workers with ``cluster.start()``; all are stopped at the end of the test."""
    from tests.support.cluster import Cluster

    c = Cluster(broker, tmp_path, api_keys=API_KEYS)
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def receiver():
    """A real webhook receiver (``tests.support.receiver``) for the module's workers."""
    from tests.support.receiver import Receiver

    r = Receiver().start()
    yield r
    r.stop()


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
