"""Browser identity (app.auth.identity, app.auth.apikeys): publishable keys, type policy, identity hashes.

End to end with a real worker and broker: tests/e2e/test_identity.py.
"""
from __future__ import annotations

import hashlib
import hmac

import pytest

from app.auth.apikeys import digest, parse_keys
from app.auth.identity import (
    ANON_PREFIX,
    DEFAULT_PUBLISHABLE_TYPES,
    browser_refusal,
    hash_ok,
    identity_hash,
)
from app.rules.events import SHOP_TYPES
from app.settings import ConfigError, load

SECRET = b"s" * 32
ALLOWED = frozenset(DEFAULT_PUBLISHABLE_TYPES)


def ev(cid="cust-1", kind="product_view"):
    return {"type": kind, "customer_id": cid, "product_id": "p1"}


def test_publishable_marker_in_key_entries():
    keys = parse_keys("pk-0123456789abcdef:publishable,pk2-0123456789abcdef:ingest|publishable,srv-0123456789abcdef:ingest,sha256:"
                      + hashlib.sha256(b"pk3").hexdigest() + ":publishable")
    assert keys == [(digest("pk-0123456789abcdef"), {"ingest", "publishable"}),
                    (digest("pk2-0123456789abcdef"), {"ingest", "publishable"}),
                    (digest("srv-0123456789abcdef"), {"ingest"}),  # today's meaning: a server key in a header
                    (digest("pk3"), {"ingest", "publishable"})]


@pytest.mark.parametrize("entry", ["k:publishable|read", "k:admin|publishable",
                                   "k:ingest|publishable|read"])
def test_publishable_keys_may_only_ingest(entry):
    with pytest.raises(ConfigError) as info:
        load({"PERSONA_API_KEYS": entry})
    assert str(info.value).startswith("PERSONA_API_KEYS: entry #1: a publishable key may only")


def test_default_types_are_every_shop_type_but_purchase():
    s = load({})
    assert s.publishable_types == frozenset(SHOP_TYPES) - {"purchase"}
    assert s.identity_secret == b""
    s = load({"PERSONA_PUBLISHABLE_TYPES": "search, product_view",
              "PERSONA_IDENTITY_SECRET": "x" * 16})
    assert s.publishable_types == {"search", "product_view"} and s.identity_secret == b"x" * 16
    assert "xxxxxxxxxxxxxxxx" not in repr(s)


def test_secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"0123456789abcdef-file\n")
    assert load({"PERSONA_IDENTITY_SECRET_FILE": str(path)}).identity_secret == \
        b"0123456789abcdef-file"


@pytest.mark.parametrize("env, variable, problem", [
    ({"PERSONA_PUBLISHABLE_TYPES": "search,teleport"}, "PERSONA_PUBLISHABLE_TYPES",
     "unknown event types ['teleport']"),
    ({"PERSONA_PUBLISHABLE_TYPES": "erase"}, "PERSONA_PUBLISHABLE_TYPES", "unknown event types"),
    ({"PERSONA_IDENTITY_SECRET": "short"}, "PERSONA_IDENTITY_SECRET", "at least 16 bytes"),
    ({"PERSONA_IDENTITY_SECRET_FILE": "/nonexistent/s"}, "PERSONA_IDENTITY_SECRET_FILE",
     "cannot read"),
    ({"PERSONA_IDENTITY_SECRET": "x" * 16, "PERSONA_IDENTITY_SECRET_FILE": "/s"},
     "set PERSONA_IDENTITY_SECRET or PERSONA_IDENTITY_SECRET_FILE", "not both"),
])
def test_each_mistake_names_the_variable(env, variable, problem):
    with pytest.raises(ConfigError) as info:
        load(env)
    assert str(info.value).startswith(variable) and problem in str(info.value), str(info.value)


def test_identity_hash_is_hex_hmac_sha256():
    expected = hmac.new(SECRET, b"cust-1", hashlib.sha256).hexdigest()
    assert identity_hash(SECRET, "cust-1") == expected
    assert hash_ok(SECRET, "cust-1", expected) and hash_ok(SECRET, "cust-1", expected.upper())
    for wrong in (None, "", expected[:-1], identity_hash(SECRET, "cust-2"),
                  identity_hash(b"t" * 32, "cust-1"), "é" * 64, expected + "0"):
        assert not hash_ok(SECRET, "cust-1", wrong), wrong


def test_type_policy_names_index_and_type():
    items = [ev(), ev(kind="purchase"), ev(kind="cart_add"), ev(kind="purchase")]
    refusal = browser_refusal(items, ALLOWED, b"", None)
    assert refusal["error"] == "forbidden event types"
    assert refusal["items"] == [{"index": 1, "type": "purchase"}, {"index": 3, "type": "purchase"}]
    assert "purchase" not in refusal["allowed"]
    assert browser_refusal([ev(kind="purchase")], frozenset(SHOP_TYPES), b"", None) is None
    # Unknown types, non-objects and internal commands are left to validation (400).
    assert browser_refusal([ev(kind="erase"), 42, ev(kind="teleport")], ALLOWED, b"", None) is None
    # Without identity verification any customer, mixed, without hash.
    assert browser_refusal([ev("a"), ev("b")], ALLOWED, b"", None) is None


def test_identity_verification():
    good = identity_hash(SECRET, "cust-1")
    assert browser_refusal([ev(), ev()], ALLOWED, SECRET, good) is None
    for presented in (None, "", "00" * 32, identity_hash(SECRET, "cust-2")):
        refusal = browser_refusal([ev()], ALLOWED, SECRET, presented)
        assert refusal["error"] == "identity not verified", presented
    anon = ANON_PREFIX + "3f2a"
    assert browser_refusal([ev(anon), ev(anon)], ALLOWED, SECRET, None) is None
    # One customer per request: a valid hash for one id does not cover another one.
    for items in ([ev(), ev("cust-2")], [ev(anon), ev()], [ev(anon), ev(ANON_PREFIX + "x")]):
        refusal = browser_refusal(items, ALLOWED, SECRET, good)
        assert refusal["error"] == "one customer per request" and refusal["customers"] == 2
    # The type policy comes first, whatever the hash.
    assert browser_refusal([ev(kind="purchase")], ALLOWED, SECRET, good)["error"] == \
        "forbidden event types"


class Request(dict):
    def __init__(self, headers=None, query=None):
        super().__init__()
        self.headers, self.query = headers or {}, query or {}


class View:
    def json(self, body, status=200, headers=None):
        return status, body


def test_a_key_in_the_url_is_publishable_in_a_header_it_keeps_its_entry(monkeypatch):
    import asyncio

    from web import auth

    keys = tuple(parse_keys("srv-0123456789abcdef:ingest,pk-0123456789abcdef:publishable,adm-0123456789abcdef:admin"))
    monkeypatch.setattr(auth, "settings", type("S", (), {"api_keys": keys})())

    @auth.require("ingest", query_key=True)
    async def view(self, request):
        return 202, request[auth.SCOPES_KEY]

    def call(**kw):
        return asyncio.run(view(View(), Request(**kw)))
    assert call(headers={"Authorization": "Bearer srv-0123456789abcdef"}) == (202, {"ingest"})
    assert call(query={"key": "srv-0123456789abcdef"}) == (202, {"ingest", "publishable"})
    assert call(headers={"Authorization": "Bearer pk-0123456789abcdef"}) == (202, {"ingest", "publishable"})
    assert call(query={"key": "pk-0123456789abcdef"}) == (202, {"ingest", "publishable"})
    assert call(query={"key": "adm-0123456789abcdef"})[0] == 403
