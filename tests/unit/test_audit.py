"""app.observability.audit: small JSON records with a key id that never holds the key; who calls is
recorded by web.auth (API key or JWT) and persona-redrive (PERSONA_ADMIN_KEY or OS user)."""
from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest

from app.auth.apikeys import digest, parse_keys
from app.cli.redrive import operator_key_id
from app.observability import audit
from tests.unit.test_jwt_auth import SECRET, hs256, verifier
from web import auth

T0 = 1_700_000_000_000
KEY = "a-very-secret-admin-key"


def test_erase_record_is_small_json_with_the_key_id_only():
    key, value = audit.record("erase", "customer:c-17", audit.key_id(KEY), T0, ref="ev-1")
    assert key == b"customer:c-17"
    assert orjson.loads(value) == {"at": T0, "action": "erase", "target": "customer:c-17",
                                   "key_id": audit.key_id(KEY), "ref": "ev-1"}
    assert KEY.encode() not in value and len(value) < 200


def test_key_id_is_a_prefix_of_the_sha256_operators_configure():
    kid = audit.key_id(KEY)
    full = hashlib.sha256(KEY.encode()).hexdigest()
    assert kid == "key:" + full[:16] and KEY not in kid
    ((configured, _),) = parse_keys(f"sha256:{full}:admin")
    assert configured.hex().startswith(kid[len("key:"):])


def test_jwt_key_id_is_the_subject_or_a_token_digest_prefix():
    assert audit.jwt_key_id({"sub": "ops-bot"}, "tok") == "jwt:ops-bot"
    assert audit.jwt_key_id({"sub": "x" * 500}, "tok") == ("jwt:" + "x" * 500)[:128]
    anonymous = audit.jwt_key_id({}, "header.payload.signature")
    assert anonymous.startswith("jwt-token:") and "signature" not in anonymous


def test_bad_records_are_refused():
    with pytest.raises(ValueError):
        audit.record("drop-table", "x", "key:1", T0)
    with pytest.raises(ValueError):
        audit.record("erase", "x", "key:1", T0, detail={"nested": "no"})
    assert orjson.loads(audit.record("redrive", "subscription:crm", None, T0, count=0)[1])[
        "key_id"] == "unknown"


def test_web_auth_gives_the_key_id_of_an_api_key_and_of_a_jwt():
    keys = [(digest(KEY), frozenset({"admin"}))]
    scopes, principal, kid = asyncio.run(auth.bearer_identity(f"Bearer {KEY}", keys=keys))
    assert scopes == frozenset({"admin"}) and kid == audit.key_id(KEY)
    assert principal == auth.key_principal(KEY)  # from the one digest of the request
    assert asyncio.run(auth.bearer_identity("Bearer nope", keys=keys)) == (None, None, None)
    v = verifier(secret=SECRET)
    token = hs256(sub="ops-bot", scope="persona:admin")
    scopes, _, kid = asyncio.run(auth.bearer_identity(f"Bearer {token}", verifier=v, keys=keys))
    assert "admin" in scopes and kid == "jwt:ops-bot"


def test_redrive_operator_is_an_admin_key_or_the_os_user():
    keys = [(digest(KEY), frozenset({"admin"})), (digest("reader"), frozenset({"read"}))]
    assert operator_key_id({"PERSONA_ADMIN_KEY": KEY}, keys) == audit.key_id(KEY)
    assert operator_key_id({}, keys).startswith("local:")
    for bad in ("reader", "unknown-key"):
        with pytest.raises(SystemExit, match="not an admin key"):
            operator_key_id({"PERSONA_ADMIN_KEY": bad}, keys)
