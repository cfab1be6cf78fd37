"""Logging in to Kafka as managed clusters require: SASL (SCRAM-SHA-512) over TLS, against a
local 3-node KRaft cluster whose SASL_SSL listeners use a certificate made by the test. A worker
(replication 3, min.insync.replicas 2) and the command-line tools work over it; a wrong
password and an untrusted CA each stop the worker within ~30 s with one line, never a hang and
never the password in the output."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest

from app.harness import free_port
from app.harness.cluster import ROOT, Worker
from app.harness.kafka import KafkaCluster
from app.harness.net import http
from tests.conftest import API_KEYS, INGEST, READ
from tests.support.certs import make_ca, make_keystore
from tests.support.cluster import poll
from tests.support.topics import describe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
USER, PASSWORD = "persona-svc", "scram-password-0123456789"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("login")
    ca = make_ca(tmp)
    cluster = KafkaCluster(free_port(), tmp / "kafka", nodes=3, keystore=make_keystore(tmp, ca),
                           scram_users=(("SCRAM-SHA-512", USER, PASSWORD),))
    cluster.start()
    secret = tmp / "password"
    secret.write_text(PASSWORD + "\n")
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD_FILE": str(secret),
           "KAFKA_SSL_CAFILE": str(ca[2])}
    url = "kafka://" + ";".join(cluster.sasl_bootstrap.split(","))
    yield cluster, url, env, tmp
    cluster.stop()


def worker(url, env, tmp, **more) -> Worker:
    port = free_port()
    return Worker(url, tmp / f"worker-{port}.log", port, tmp / f"worker-{port}",
                  {"PERSONA_API_KEYS": API_KEYS, **env, **more}, compat=False)


def cli(module: str, url: str, env: dict, *args, stdin: bytes | None = None):
    full = {**os.environ, "KAFKA_BROKER_URL": url, "PERSONA_LOCAL_BROKER_COMPAT": "0", **env}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=full,
                          input=stdin, capture_output=True, timeout=180)


def test_a_worker_and_the_tools_over_sasl_ssl(secured):
    cluster, url, env, tmp = secured
    w = worker(url, env, tmp, PERSONA_REPLICATION_FACTOR="3").start()
    try:
        w.wait_ready(timeout=120)
        events = [{"type": "product_view", "customer_id": f"sec-{i}", "product_id": "p1",
                   "event_id": f"sec-{i}-1"} for i in range(5)]
        status, body = http("POST", f"{w.url}/v1/events", INGEST, orjson.dumps(events),
                            {"Content-Type": "application/json"})
        assert status == 202, body
        now = int(time.time() * 1000)
        replayed = b"\n".join(orjson.dumps({**e, "event_id": e["event_id"] + "-r", "ts": now,
                                            "product_id": "p2"}) for e in events)
        done = cli("app.cli.replay", url, env, "-", stdin=replayed)
        assert done.returncode == 0 and b"replayed 5 events" in done.stderr, done.stderr
        for e in events:
            got = poll(lambda c=e["customer_id"]: http(
                "GET", f"{w.url}/v1/customers/{c}/profile", READ),
                lambda r: r[0] == 200 and r[1]["event_counts"].get("product_view") == 2, 90)
            assert got[1]["event_counts"] == {"product_view": 2}, got
        # Every topic the worker created has 3 copies and needs 2 in sync for a write.
        plain = cluster.bootstrap  # the PLAINTEXT listener, for looking only
        topics = describe(plain, ["events", "webhook-deliveries", "audit",
                                  "persona-profiles-changelog", "persona-kpis-1d-changelog"])
        assert len(topics) == 5
        for topic, got in topics.items():
            assert got["replicas"] == 3 and got["configs"]["min.insync.replicas"] == "2", topic
        time.sleep(11)  # one write-back flush interval: the changelogs hold the states
        checked = cli("app.cli.reconcile", url, env, "--wait", "90")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert b"5 checked, 5 match, 0 mismatch" in checked.stdout, checked.stdout
        redrive = cli("app.cli.redrive", url, {**env, "PERSONA_WEBHOOKS": orjson.dumps([{
            "id": "crm", "url": "http://127.0.0.1:9/x", "secret": "redrive-secret-0123",
            "events": ["cart.updated"]}]).decode()}, "--dry-run", "--timeout", "30")
        assert redrive.returncode == 0, redrive.stdout + redrive.stderr
        # A shadow of this checkout logs in with the same settings and sees no difference.
        shadow = cli("app.cli.shadow", url, {**env, "PERSONA_READ_KEY": READ}, "--app-root",
                     str(ROOT), "--live-url", w.url, "--name", "sasl", "--timeout", "120")
        assert shadow.returncode == 0, shadow.stdout + shadow.stderr
        assert b"customers changed: 0 of 5" in shadow.stdout, shadow.stdout
        for out in (done, checked, redrive, shadow):
            assert PASSWORD.encode() not in out.stdout + out.stderr
    finally:
        w.stop()
    assert PASSWORD not in w.log.read_text(errors="replace")


@pytest.mark.parametrize("change,cause", [
    ({"KAFKA_SASL_PASSWORD": "not-the-password-0000"}, "invalid credentials"),
    ("other-ca", "CERTIFICATE_VERIFY_FAILED"),
])
def test_a_wrong_password_or_ca_stops_the_worker_with_one_line(secured, change, cause):
    cluster, url, env, tmp = secured
    bad = dict(env)
    if change == "other-ca":
        bad["KAFKA_SSL_CAFILE"] = str(make_ca(tmp, "someone else's CA")[2])
    else:
        bad.pop("KAFKA_SASL_PASSWORD_FILE")
        bad.update(change)
    w = worker(url, bad, tmp).start()
    started = time.monotonic()
    try:
        code = w.proc.wait(60)
    finally:
        w.stop()
    assert time.monotonic() - started < 45
    assert code == 2, w.tail(20)
    lines = [ln for ln in w.log.read_text(errors="replace").splitlines()
             if ln.startswith("persona: ")]
    assert len(lines) == 1 and "cannot log in to Kafka" in lines[0], w.tail(20)
    assert cause in lines[0] and "SASL_SSL" in lines[0], lines[0]
    assert PASSWORD not in w.log.read_text() and "not-the-password" not in lines[0]


def test_with_two_of_three_brokers_down_ingest_answers_503_and_loses_nothing(secured):
    """Replication 3, min.insync.replicas 2: with two brokers killed nothing can be written
    safely, so POST /v1/events answers 503 with Retry-After, never 202; once they are back,
    ingest resumes and every event acknowledged before is there. (Runs last in the module:
    it restarts brokers.)"""
    cluster, url, env, tmp = secured
    w = worker(url, env, tmp, PERSONA_REPLICATION_FACTOR="3",
               PERSONA_INGEST_TIMEOUT_S="5").start()
    try:
        w.wait_ready(timeout=120)

        def post(cid, n):
            return http("POST", f"{w.url}/v1/events", INGEST, orjson.dumps(
                [{"type": "product_view", "customer_id": cid, "product_id": f"p{n}",
                  "event_id": f"{cid}-{n}"}]), {"Content-Type": "application/json"}, timeout=30)
        assert post("down-1", 1)[0] == 202
        for node in (2, 3):
            cluster.stop_node(node, sig=9)
        answers = [post("down-1", n) for n in (2, 3)]
        assert [a[0] for a in answers] == [503, 503], answers
        assert all(a[1]["error"] == "unavailable" for a in answers)
        for node in (2, 3):
            cluster.start_node(node)
        got = poll(lambda: post("down-1", 2), lambda r: r[0] == 202, 120, interval=2)
        assert got[0] == 202, got
        assert post("down-1", 3)[0] == 202
        final = poll(lambda: http("GET", f"{w.url}/v1/customers/down-1/profile", READ),
                     lambda r: r[0] == 200 and r[1]["event_counts"].get("product_view") == 3,
                     120)
        assert final[1]["event_counts"] == {"product_view": 3}, final
    finally:
        w.stop()
