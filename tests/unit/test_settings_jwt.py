"""PERSONA_JWT_* settings: parsed at start by app.settings, every mistake names the variable."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.settings import ConfigError, load, load_or_exit

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_JWK = {**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "r1"}
EC_JWK = {**ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True), "kid": "e1"}
SECRET = "x" * 32


def jwks(tmp_path, *entries, raw: str | None = None) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(raw if raw is not None else json.dumps({"keys": list(entries)}))
    return str(path)


def test_off_by_default_and_a_full_configuration_loads(tmp_path):
    assert load({}).jwt is None
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    s = load({"PERSONA_JWT_JWKS_FILE": jwks(tmp_path, RSA_JWK, EC_JWK,
                                            {"kty": "oct", "k": "c2VjcmV0", "kid": "o"}),
              "PERSONA_JWT_HS256_SECRET_FILE": str(secret_file),
              "PERSONA_JWT_ISSUER": "https://id.example/", "PERSONA_JWT_AUDIENCE": "persona, api",
              "PERSONA_JWT_LEEWAY_S": "5", "PERSONA_JWT_SCOPE_PREFIX": "persona:"})
    c = s.jwt
    assert set(c.jwks_keys) == {"r1", "e1"}  # the symmetric JWK is ignored
    assert [a for a, _ in c.jwks_keys["r1"]] == ["RS256"] and c.jwks_keys["e1"][0][0] == "ES256"
    assert c.hs256_secret == SECRET.encode()  # trailing newline of the file stripped
    assert c.audience == ("persona", "api") and c.issuer == "https://id.example/"
    assert c.leeway_s == 5.0 and c.scope_prefix == "persona:"
    assert SECRET not in repr(s)
    url = load({"PERSONA_JWT_JWKS_URL": "https://id.example/.well-known/jwks.json"}).jwt
    assert url.jwks_url.endswith("jwks.json") and url.jwks_keys == {} and url.leeway_s == 30.0
    assert load({"PERSONA_JWT_HS256_SECRET": SECRET}).jwt.hs256_secret == SECRET.encode()


def private_rsa_jwk():
    return {**RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True), "kid": "r1"}


def rsa_pem() -> str:
    return RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize("make_env, variable, problem", [
    (lambda t: {"PERSONA_JWT_JWKS_FILE": "/nonexistent/jwks.json"},
     "PERSONA_JWT_JWKS_FILE", "cannot read"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, raw="{keys")},
     "PERSONA_JWT_JWKS_FILE", "not valid JSON"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, raw="[]")},
     "PERSONA_JWT_JWKS_FILE", "not a JWK Set"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t)},
     "PERSONA_JWT_JWKS_FILE", "no RS256 (RSA) or ES256 (EC P-256) signing key"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, {"kty": "oct", "k": "c2VjcmV0"})},
     "PERSONA_JWT_JWKS_FILE", "no RS256"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, {**RSA_JWK, "alg": "RS512"})},
     "PERSONA_JWT_JWKS_FILE", "no RS256"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, {**RSA_JWK, "n": "!!"})},
     "PERSONA_JWT_JWKS_FILE", "key #0 is not a usable RS256 key"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, private_rsa_jwk())},
     "PERSONA_JWT_JWKS_FILE", "private key"),
    (lambda t: {"PERSONA_JWT_JWKS_FILE": jwks(t, RSA_JWK), "PERSONA_JWT_JWKS_URL": "https://x/"},
     "PERSONA_JWT_JWKS_FILE and PERSONA_JWT_JWKS_URL", "not both"),
    (lambda t: {"PERSONA_JWT_JWKS_URL": "http://id.example/jwks"},
     "PERSONA_JWT_JWKS_URL", "must be an https:// URL"),
    (lambda t: {"PERSONA_JWT_JWKS_URL": "id.example/jwks"},
     "PERSONA_JWT_JWKS_URL", "must be an https:// URL"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": "short-secret"},
     "PERSONA_JWT_HS256_SECRET", "at least 32 bytes, got 12"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": rsa_pem()},
     "PERSONA_JWT_HS256_SECRET", "looks like a PEM"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET_FILE": "/nonexistent/secret"},
     "PERSONA_JWT_HS256_SECRET_FILE", "cannot read"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET_FILE": jwks(t, raw="\n")},
     "PERSONA_JWT_HS256_SECRET_FILE", "at least 32 bytes, got 0"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": SECRET, "PERSONA_JWT_HS256_SECRET_FILE": "/s"},
     "PERSONA_JWT_HS256_SECRET and PERSONA_JWT_HS256_SECRET_FILE", "not both"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": SECRET, "PERSONA_JWT_LEEWAY_S": "soon"},
     "PERSONA_JWT_LEEWAY_S", "must be a number"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": SECRET, "PERSONA_JWT_LEEWAY_S": "-1"},
     "PERSONA_JWT_LEEWAY_S", "between 0 and 300"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": SECRET, "PERSONA_JWT_LEEWAY_S": "nan"},
     "PERSONA_JWT_LEEWAY_S", "between 0 and 300"),
    (lambda t: {"PERSONA_JWT_HS256_SECRET": SECRET, "PERSONA_JWT_SCOPE_PREFIX": "persona read"},
     "PERSONA_JWT_SCOPE_PREFIX", "must not contain spaces"),
    (lambda t: {"PERSONA_JWT_ISSUER": "https://id.example/"},
     "PERSONA_JWT_ISSUER", "no key is"),
    (lambda t: {"PERSONA_JWT_AUDIENCE": "persona"}, "PERSONA_JWT_AUDIENCE", "no key is"),
])
def test_each_jwt_mistake_names_the_variable(tmp_path, make_env, variable, problem):
    with pytest.raises(ConfigError) as info:
        load(make_env(tmp_path))
    message = str(info.value)
    assert message.startswith(variable), message
    assert problem in message
    assert "\n" not in message


def test_a_short_secret_is_never_printed():
    with pytest.raises(ConfigError) as info:
        load({"PERSONA_JWT_HS256_SECRET": "hunter2-hunter2"})
    assert "hunter2" not in str(info.value)


def test_a_bad_jwks_file_stops_the_process_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        load_or_exit({"PERSONA_JWT_JWKS_FILE": jwks(tmp_path, raw="not json")})
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("persona: invalid setting: PERSONA_JWT_JWKS_FILE: ")
