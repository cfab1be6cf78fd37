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
