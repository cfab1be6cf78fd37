"""A misconfigured worker refuses to start, naming the variable (real ``faust worker``).

Before app.settings parsed everything at start, ``PERSONA_API_KEYS=nocolonkey`` gave a
worker whose /health answered 200 and whose every /v1 route was 404 (Faust only logs
errors raised while autodiscovering). No broker is needed: the worker must stop before
it connects to anything, and must never open its web port.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.harness.ready import free_port
from app.settings import WORKER_ARGV

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).with_name("faust")


@pytest.mark.parametrize("env, variable", [
    ({"PERSONA_API_KEYS": "nocolonkey"}, "PERSONA_API_KEYS"),
    ({"PERSONA_WEBHOOKS": '[{"id": "crm"}]'}, "PERSONA_WEBHOOKS[0]"),
    ({"PERSONA_TLS_CERT": "/nonexistent/cert.pem"}, "PERSONA_TLS_CERT"),
    ({"PERSONA_BATCH_MAX": "lots"}, "PERSONA_BATCH_MAX"),
    ({"PERSONA_PUBLISHABLE_TYPES": "purchase,teleport"}, "PERSONA_PUBLISHABLE_TYPES"),
    ({"PERSONA_IDENTITY_SECRET": "too-short"}, "PERSONA_IDENTITY_SECRET"),
    ({"PERSONA_API_KEYS": "pk:publishable|admin"}, "PERSONA_API_KEYS"),
    ({"PERSONA_RATE_INGEST": "100 per second"}, "PERSONA_RATE_INGEST"),
    ({"PERSONA_RATE_READ": "10/s:0"}, "PERSONA_RATE_READ"),
    ({"PERSONA_METRICS": "disabled"}, "PERSONA_METRICS"),
    ({"PERSONA_IDENTITY_SECERT": "x" * 32}, "PERSONA_IDENTITY_SECERT"),
    ({"PERSONA_INGEST_TIMEOUT_S": "inf"}, "PERSONA_INGEST_TIMEOUT_S"),
    ({"PERSONA_DEMO_KEY": "ok-key-0123456789abcdef"}, "PERSONA_DEMO_KEY"),
    ({"PERSONA_DEMO_KEY": "configured-nowhere"}, "PERSONA_DEMO_KEY"),
    ({"PERSONA_WEBHOOKS": '[{"id": "crm", "url": "http://h:99999/x", "secret": "0123456789abcdef", '
                          '"events": ["cart.updated"]}]'}, "PERSONA_WEBHOOKS[0]"),
    ({"PERSONA_WEBHOOKS": '[{"id": "crm", "url": "http://h/x", "secret": "k", '
                          '"events": ["cart.updated"]}]'}, "PERSONA_WEBHOOKS[0]"),
    ({"PERSONA_GROUP_SESSION_TIMEOUT_S": "2"}, "PERSONA_GROUP_SESSION_TIMEOUT_S"),
])
def test_worker_exits_at_start_with_one_line_naming_the_variable(tmp_path, env, variable):
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    run = subprocess.run(
        [str(FAUST), *WORKER_ARGV, "--web-port", str(port)], cwd=ROOT, timeout=60,
        env={**clean, "PERSONA_API_KEYS": "ok-key-0123456789abcdef:read", "PERSONA_LOCAL_BROKER_PORT":
             str(free_port()), "PERSONA_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True, text=True)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("persona: invalid setting:")]
    assert len(lines) == 1 and lines[0].startswith(f"persona: invalid setting: {variable}"), \
        run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    with socket.socket() as s:  # never served anything
        assert s.connect_ex(("127.0.0.1", port)) != 0
