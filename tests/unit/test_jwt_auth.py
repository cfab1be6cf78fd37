"""app.auth.jwt_auth and web.auth with JWT bearers: only valid tokens pass.

Every key is generated here (cryptography); tokens are made with PyJWT, and the forged
ones (``alg: none``, HS256 "signed" with the RSA public key) by hand, as an attacker would.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.auth.jwt_auth import Verifier, jwt_config, looks_like_jwt, map_scopes
from web import auth

ISS, AUD = "https://id.shop.example/", "persona"
SECRET = "s" * 40
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(private, kid: str) -> dict:
    algo = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    entry = algo.to_jwk(private.public_key(), as_dict=True)
    return {**entry, "kid": kid, "use": "sig"}


def write_jwks(path, *entries) -> str:
    path.write_text(json.dumps({"keys": list(entries)}))
    return str(path)


def claims(**over) -> dict:
    now = int(time.time())
    base = {"iss": ISS, "aud": AUD, "sub": "svc-1", "iat": now, "exp": now + 300,
            "scope": "openid persona:read"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def rs256(kid="rsa-1", key=RSA_KEY, **over) -> str:
    return jwt.encode(claims(**over), key, algorithm="RS256", headers={"kid": kid})


def es256(kid="ec-1", **over) -> str:
    return jwt.encode(claims(**over), EC_KEY, algorithm="ES256", headers={"kid": kid})


def hs256(secret=SECRET, **over) -> str:
    return jwt.encode(claims(**over), secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, sign=lambda signing_input: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks_file(tmp_path):
    return write_jwks(tmp_path / "jwks.json", public_jwk(RSA_KEY, "rsa-1"),
                      public_jwk(EC_KEY, "ec-1"))


def verifier(jwks_file=None, secret=None, clock=None, **env) -> Verifier:
    full = {"PERSONA_JWT_ISSUER": ISS, "PERSONA_JWT_AUDIENCE": AUD,
            "PERSONA_JWT_SCOPE_PREFIX": "persona:", **env}
    if jwks_file:
        full["PERSONA_JWT_JWKS_FILE"] = jwks_file
    if secret:
        full["PERSONA_JWT_HS256_SECRET"] = secret
    config = jwt_config(full)
    return Verifier(config, clock=clock) if clock else Verifier(config)


def scopes(v: Verifier, token: str):
    return asyncio.run(v.scopes(token))


# -- the valid ones pass ---------------------------------------------------------------


def test_valid_rs256_es256_and_hs256_tokens_pass(jwks_file):
    both = verifier(jwks_file, SECRET)
    assert scopes(both, rs256()) == {"read"}
    assert scopes(both, es256(scope="persona:ingest persona:read")) == {"ingest", "read"}
    assert scopes(both, hs256(scope="persona:admin")) == {"admin"}
    assert both.refreshes == 0  # the keys loaded at start were enough


def test_leeway_accepts_a_token_that_expired_a_moment_ago(jwks_file):
    now = int(time.time())
    assert scopes(verifier(jwks_file), rs256(exp=now - 10)) == {"read"}
    assert scopes(verifier(jwks_file, PERSONA_JWT_LEEWAY_S="0"), rs256(exp=now - 10)) is None


# -- everything else is refused ----------------------------------------------------------


@pytest.mark.parametrize("make", [
    pytest.param(lambda: rs256(exp=int(time.time()) - 120), id="expired"),
    pytest.param(lambda: es256(nbf=int(time.time()) + 120), id="not-yet-valid"),
    pytest.param(lambda: rs256(aud="another-api"), id="wrong-audience"),
    pytest.param(lambda: rs256(exp=str(int(time.time()) + 300)), id="exp-numeric-string"),
    pytest.param(lambda: hs256(nbf=str(int(time.time()) - 10)), id="nbf-numeric-string"),
    pytest.param(lambda: es256(iat=str(int(time.time()))), id="iat-numeric-string"),
    pytest.param(lambda: hs256(exp=True), id="exp-boolean"),
    pytest.param(lambda: rs256(aud=None), id="no-audience"),
    pytest.param(lambda: rs256(iss="https://evil.example/"), id="wrong-issuer"),
    pytest.param(lambda: rs256(iss=None), id="no-issuer"),
    pytest.param(lambda: rs256(exp=None), id="no-expiry"),
    pytest.param(lambda: hs256(secret="t" * 40), id="hs256-other-secret"),
    pytest.param(lambda: rs256(key=rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048)),
                 id="rs256-signed-by-another-key-same-kid"),
    pytest.param(lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS384",
                                    headers={"kid": "rsa-1"}), id="rs384-not-pinned"),
    pytest.param(lambda: jwt.encode(claims(), RSA_KEY, algorithm="PS256",
                                    headers={"kid": "rsa-1"}), id="ps256-not-pinned"),
    pytest.param(lambda: forge({"alg": "none", "typ": "JWT"}, claims()), id="alg-none"),
    pytest.param(lambda: forge({"alg": "None", "kid": "rsa-1"}, claims()), id="alg-None"),
    pytest.param(lambda: forge({"alg": "ES256", "kid": "rsa-1"}, claims(),
                               lambda m: RSA_KEY.sign(m, *_pkcs1())), id="es256-on-rsa-key"),
])
def test_invalid_tokens_are_refused(jwks_file, make):
    assert scopes(verifier(jwks_file, SECRET), make()) is None


def _pkcs1():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return padding.PKCS1v15(), hashes.SHA256()


def rsa_public_pem() -> bytes:
    return RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("with_secret", [False, True])
def test_hs_rs_confusion_is_refused(jwks_file, with_secret):
    """An HS256 token whose HMAC key is the RSA public key (PEM or JWK) the JWKS publishes."""
    pem = rsa_public_pem()
    jwk_json = json.dumps(public_jwk(RSA_KEY, "rsa-1")).encode()
    v = verifier(jwks_file, SECRET if with_secret else None)
    for key in (pem, pem.strip(), jwk_json):
        token = forge({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, claims(scope="persona:admin"),
                      lambda m, key=key: hmac.new(key, m, hashlib.sha256).digest())
        assert scopes(v, token) is None


def test_hs256_only_with_a_secret_and_rs256_only_with_a_jwks(jwks_file):
    assert scopes(verifier(jwks_file), hs256()) is None
    assert scopes(verifier(secret=SECRET), rs256()) is None
    assert scopes(verifier(secret=SECRET), hs256()) == {"read"}


def test_tampered_payload_is_refused(jwks_file):
    v = verifier(jwks_file, SECRET)
    for token in (rs256(), es256(), hs256()):
        head, _, sig = token.split(".")
        forged = b64(json.dumps(claims(scope="persona:admin", sub="someone-else")).encode())
        assert scopes(v, f"{head}.{forged}.{sig}") is None
        assert scopes(v, token) == {"read"}  # the untouched one still passes


def test_garbage_that_looks_like_a_jwt_is_refused(jwks_file):
    v = verifier(jwks_file, SECRET)
    for token in ("a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", f"{b64(b'[1]')}.{b64(b'{}')}.x",
                  rs256() + "x" * 9000):
        assert scopes(v, token) is None
    assert looks_like_jwt(rs256()) and not looks_like_jwt("test-read-0123456789")
    assert not looks_like_jwt("a.b") and not looks_like_jwt("a.b.c.d")


# -- the JWKS cache --------------------------------------------------------------------


def test_unknown_kid_reloads_the_jwks_once_then_401_and_rotation_works(tmp_path):
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(RSA_KEY, "rsa-1"))
    clock = Clock()
    v = verifier(str(path), clock=clock)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert scopes(v, rs256(kid="rsa-2", key=new_key)) is None
    assert v.refreshes == 1  # the unknown kid reloaded the file once
    clock.now += 5
    assert scopes(v, rs256(kid="rsa-2", key=new_key)) is None
    assert scopes(v, rs256(kid="rsa-3", key=new_key)) is None
    assert v.refreshes == 1  # rate-limited: no reload within 30 s
    assert scopes(v, rs256()) == {"read"}

    write_jwks(path, public_jwk(RSA_KEY, "rsa-1"), public_jwk(new_key, "rsa-2"))  # rotation
    clock.now += 30
    assert scopes(v, rs256(kid="rsa-2", key=new_key)) == {"read"}
    assert v.refreshes == 2

    path.write_text("{not json")  # a broken reload keeps the known keys
    clock.now += 31
    assert scopes(v, rs256(kid="rsa-9", key=new_key)) is None
    assert scopes(v, rs256(kid="rsa-2", key=new_key)) == {"read"}
    assert v.refreshes == 2


def test_concurrent_unknown_kids_reload_once(jwks_file):
    v = verifier(jwks_file)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def many():
        return await asyncio.gather(*(v.scopes(rs256(kid=f"k{n}", key=other)) for n in range(20)))

    assert asyncio.run(many()) == [None] * 20
    assert v.refreshes == 1


def test_token_without_kid_needs_exactly_one_key_of_its_algorithm(tmp_path):
    single = verifier(write_jwks(tmp_path / "one.json", public_jwk(RSA_KEY, "rsa-1"),
                                 public_jwk(EC_KEY, "ec-1")))
    no_kid = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert scopes(single, no_kid) == {"read"}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    two = verifier(write_jwks(tmp_path / "two.json", public_jwk(RSA_KEY, "rsa-1"),
                              public_jwk(other, "rsa-2")))
    assert scopes(two, no_kid) is None


def test_jwks_url_is_fetched_once_cached_and_refetched_on_unknown_kid():
    hits = []
    keys = {"keys": [public_jwk(RSA_KEY, "rsa-1")]}

    async def jwks(request):
        hits.append(request.path)
        return web.json_response(keys)

    async def run():
        server = web.Application()
        server.router.add_get("/.well-known/jwks.json", jwks)
        runner = web.AppRunner(server)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            clock = Clock()
            v = Verifier(jwt_config({"PERSONA_JWT_JWKS_URL":
                                     f"http://127.0.0.1:{port}/.well-known/jwks.json",
                                     "PERSONA_JWT_ISSUER": ISS, "PERSONA_JWT_AUDIENCE": AUD}),
                         clock=clock)
            first = await v.scopes(rs256(scope="read admin"))
            second = await v.scopes(rs256(scope="read"))
            assert len(hits) == 1
            keys["keys"].append(public_jwk(EC_KEY, "ec-1"))
            unknown = await v.scopes(es256(kid="ec-1"))
            assert len(hits) == 1  # fetched less than 30 s ago: no refetch yet
            clock.now += 31
            rotated = await v.scopes(es256(kid="ec-1", scope="read"))
            assert len(hits) == 2  # the unknown kid refetched the set
            clock.now += 3601  # the cache is reloaded when older than an hour
            assert await v.scopes(rs256()) == frozenset()  # unprefixed config: 'persona:read'
            assert len(hits) == 3
            return first, second, unknown, rotated
        finally:
            await runner.cleanup()

    first, second, unknown, rotated = asyncio.run(run())
    assert first == {"read", "admin"} and second == {"read"}
    assert unknown is None and rotated == {"read"}


def test_unreachable_jwks_url_refuses_tokens_without_raising():
    port = _closed_port()
    v = Verifier(jwt_config({"PERSONA_JWT_JWKS_URL": f"http://127.0.0.1:{port}/jwks"}))
    assert scopes(v, rs256(aud=None, iss=None)) is None
    assert v.refreshes == 0


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize("token_claims, prefix, expected", [
    ({"scope": "read ingest"}, "", {"read", "ingest"}),
    ({"scope": "openid profile read"}, "", {"read"}),
    ({"scp": ["read", "admin"]}, "", {"read", "admin"}),
    ({"scp": "read ingest"}, "", {"read", "ingest"}),
    ({"scope": "read", "scp": ["ingest"]}, "", {"read", "ingest"}),
    ({"scope": "persona:read other:admin admin"}, "persona:", {"read"}),
    ({"scp": ["persona:admin", "persona:write"]}, "persona:", {"admin"}),
    ({"scope": "persona:read"}, "", set()),
    ({"scope": ["read"], "scp": 7}, "", {"read"}),
    ({}, "", set()),
])
def test_scope_mapping(token_claims, prefix, expected):
    assert map_scopes(token_claims, prefix) == expected


# -- web.auth.require with JWTs ----------------------------------------------------------


class FakeView:
    def json(self, body, status=200, headers=None):
        return status, body


class FakeRequest(dict):  # aiohttp's Request is a MutableMapping too (web.auth stores scopes)
    def __init__(self, authorization=None, query=None):
        super().__init__()
        self.headers = {"Authorization": authorization} if authorization else {}
        self.query = query or {}


def call(scope, authorization=None, query=None, query_key=False):
    @auth.require(scope, query_key=query_key)
    async def view(self, request):
        return 200, "ok"
    return asyncio.run(view(FakeView(), FakeRequest(authorization, query)))


def test_require_accepts_jwts_with_same_401_403_semantics(jwks_file, monkeypatch):
    monkeypatch.setattr(auth, "JWT", verifier(jwks_file, SECRET))
    read_only = rs256()
    assert call("read", f"Bearer {read_only}") == (200, "ok")
    assert call("admin", f"Bearer {read_only}")[0] == 403  # read-only token on an admin route
    assert call("ingest", f"Bearer {read_only}")[0] == 403
    assert call("ingest", f"Bearer {es256(scope='persona:admin')}") == (200, "ok")
    assert call("read", f"Bearer {rs256(exp=int(time.time()) - 120)}")[0] == 401
    assert call("read", f"Bearer {forge({'alg': 'none'}, claims())}")[0] == 401
    assert call("read", f"Bearer {es256(scope='openid')}")[0] == 403  # valid, no Persona scope
    assert call("read")[0] == 401
    # API keys keep working next to JWTs (conftest's keys)
    assert call("read", "Bearer test-read-0123456789") == (200, "ok")
    assert call("admin", "Bearer test-read-0123456789")[0] == 403
    # ?key= stays API-key only: a JWT there is not a key
    assert call("ingest", query={"key": es256(scope="persona:ingest")}, query_key=True)[0] == 401
    assert call("ingest", query={"key": "test-ingest-0123456789"}, query_key=True) == (200, "ok")


def test_require_without_jwt_config_treats_a_jwt_as_an_unknown_key(jwks_file, monkeypatch):
    monkeypatch.setattr(auth, "JWT", None)
    assert call("read", f"Bearer {rs256()}")[0] == 401
    assert call("read", "Bearer test-read-0123456789") == (200, "ok")


def test_an_api_key_that_looks_like_a_jwt_still_works(jwks_file, monkeypatch):
    monkeypatch.setattr(auth, "JWT", verifier(jwks_file))
    from app.auth.apikeys import parse_keys
    keys = parse_keys("abc.def.ghi-0123456789abcdef:read")
    assert asyncio.run(auth.bearer_scopes("Bearer abc.def.ghi-0123456789abcdef", keys=keys)) == {"read"}


def test_a_jwks_with_an_rsa_key_under_2048_bits_is_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from app.auth.jwt_config import JwksError, parse_jwks
    weak = json.loads(RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()))
    with pytest.raises(JwksError, match="1024 bits; at least 2048"):
        parse_jwks(json.dumps({"keys": [{**weak, "kid": "weak", "use": "sig"}]}))
    strong = json.loads(RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()))
    assert list(parse_jwks(json.dumps({"keys": [{**strong, "kid": "ok"}]}))) == ["ok"]
