"""Real workers configured with a JWKS file accept JWT bearers, refuse bad ones, and a read
forwarded from one worker to the owner of the customer stays authenticated by the JWT."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.harness.net import http
from app.settings import WORKER_ARGV
from tests.conftest import READ
from tests.support.cluster import poll

pytestmark = pytest.mark.e2e
ISS, AUD = "https://id.shop.example/", "persona"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FORWARDED = {"X-Persona-Forwarded": "1"}


def token(scope="persona:read", exp_in=300, key=KEY, kid="idp-1") -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISS, "aud": AUD, "sub": "backend", "iat": now, "exp": now + exp_in,
                       "scope": scope}, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwt_env(tmp_path):
    jwk = {**RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "idp-1", "use": "sig"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return {"PERSONA_JWT_JWKS_FILE": str(path), "PERSONA_JWT_ISSUER": ISS,
            "PERSONA_JWT_AUDIENCE": AUD, "PERSONA_JWT_SCOPE_PREFIX": "persona:"}


def get_profile(worker, cid, bearer, headers=None):
    return http("GET", f"{worker.url}/v1/customers/{cid}/profile", bearer, headers=headers)


def test_jwt_bearers_on_real_workers_and_forwarded_reads(cluster, jwt_env):
    a = cluster.start(env=jwt_env)
    read, expired = token(), token(exp_in=-120)

    status, _ = poll(lambda: get_profile(a, "nobody", read), lambda r: r[0] != 503)
    assert status == 404  # authenticated: the customer simply does not exist
    assert get_profile(a, "nobody", expired)[0] == 401
    assert get_profile(a, "nobody", token(key=rsa.generate_private_key(65537, 2048)))[0] == 401
    assert get_profile(a, "nobody", token(kid="unknown"))[0] == 401
    assert http("DELETE", f"{a.url}/v1/customers/nobody", read)[0] == 403  # read-only token
    assert get_profile(a, "nobody", READ)[0] == 404  # API keys keep working

    # Two workers: ingest with an ingest token, then read every customer from both.
    b = cluster.start(env=jwt_env)
    both_ready(a, b)
    customers = [f"jwt-c{n}" for n in range(12)]
    events = [{"type": "product_view", "customer_id": cid, "product_id": f"p{n}",
               "ts": 1_700_000_000_000 + n} for n, cid in enumerate(customers)]
    status, body = http("POST", f"{a.url}/v1/events", token("persona:ingest"),
                        body=orjson.dumps(events), headers={"Content-Type": "application/json"})
    assert status == 202, body

    for cid in customers:
        answers = {}
        for w in (a, b):
            answers[w.port] = poll(lambda w=w, cid=cid: get_profile(w, cid, read),
                                   lambda r: r[0] == 200, 90)
            assert answers[w.port][0] == 200, (cid, w.port, answers[w.port])
        assert answers[a.port] == answers[b.port]
        # Exactly one worker owns cid (it answers a request marked as forwarded; the other
        # answers 503 to it), so the other worker's 200 above was a forwarded JWT read.
        owners = [w for w in (a, b)
                  if get_profile(w, cid, read, headers=FORWARDED)[0] == 200]
        assert len(owners) == 1, cid
        # The owner checks the JWT of a forwarded read itself.
        assert get_profile(owners[0], cid, expired, headers=FORWARDED)[0] == 401
        assert get_profile(owners[0], cid, None, headers=FORWARDED)[0] == 401
    for w in (a, b):
        assert get_profile(w, customers[0], expired)[0] == 401


def both_ready(a, b):
    def ok():
        sa, ba = http("GET", f"{a.url}/ready")
        sb, bb = http("GET", f"{b.url}/ready")
        return sa == sb == 200 and ba["active_partitions"] > 0 and bb["active_partitions"] > 0
    assert poll(ok, bool, timeout=90), "two workers never shared the partitions"


def test_worker_with_a_bad_jwks_file_exits_naming_the_variable(tmp_path):
    bad = tmp_path / "jwks.json"
    bad.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("faust")), *WORKER_ARGV, "--web-port", "1"],
        cwd=Path(__file__).resolve().parents[2], timeout=60, capture_output=True, text=True,
        env={**clean, "PERSONA_API_KEYS": "ok-key-0123456789abcdef:read", "PERSONA_DATA_DIR": str(tmp_path / "d"),
             "PERSONA_JWT_JWKS_FILE": str(bad)})
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("persona: invalid setting:")]
    assert lines == ["persona: invalid setting: PERSONA_JWT_JWKS_FILE: holds no RS256 (RSA) "
                     "or ES256 (EC P-256) signing key"], run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_a_jwks_url_that_does_not_load_keeps_the_worker_not_ready_until_it_does(cluster):
    """An unreachable PERSONA_JWT_JWKS_URL: /ready answers 503 naming it (never a ready
    worker that refuses every JWT); once the JWKS server answers, the worker becomes ready
    and accepts the issuer's tokens."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.harness.net import get_json
    from app.harness.ready import free_port
    port = free_port()
    jwk = {**RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "idp-1", "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    env = {"PERSONA_JWT_JWKS_URL": f"http://127.0.0.1:{port}/jwks.json",
           "PERSONA_JWT_ISSUER": ISS, "PERSONA_JWT_AUDIENCE": AUD,
           "PERSONA_JWT_SCOPE_PREFIX": "persona:"}
    worker = cluster.start(wait=False, env=env)
    got = poll(lambda: get_json(f"{worker.url}/ready"),
               lambda r: r[0] == 503 and isinstance(r[1], dict) and "jwks_loaded" in r[1], 90)
    assert got[0] == 503 and got[1]["jwks_loaded"] is False, got
    assert http("GET", f"{worker.url}/health")[0] == 200
    logged = poll(lambda: worker.log.read_text(errors="replace"),
                  lambda text: "PERSONA_JWT_JWKS_URL: cannot load the JWKS" in text, 30)
    assert "PERSONA_JWT_JWKS_URL: cannot load the JWKS" in logged
    assert get_json(f"{worker.url}/ready")[0] == 503  # still not ready, past the first try
    server = ThreadingHTTPServer(("127.0.0.1", port), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        worker.wait_ready(timeout=30)
        assert get_profile(worker, "nobody", token())[0] == 404  # the token is accepted
    finally:
        server.shutdown()
