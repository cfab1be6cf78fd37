"""JWT bearer configuration: the ``PERSONA_JWT_*`` variables, validated at start.

``jwt_config(env)`` is what ``app.settings`` calls: a bad JWKS file, URL, secret, leeway or
prefix raises ``JwtConfigError`` naming the variable, so the worker stops before it serves.
Verification of tokens is ``app.auth.jwt_auth`` (see its docstring for the rules).
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK

PERSONA_SCOPES = ("ingest", "read", "admin", "metrics")  # same as app.auth.apikeys.SCOPES
#: A token is three base64url parts; a bearer that looks like this goes to the verifier.
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN_BYTES = 8192
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key of at least 256 bits
REFRESH_MIN_INTERVAL_S = 30.0
JWKS_MAX_AGE_S = 3600.0
JWKS_MAX_BYTES = 1024 * 1024
JWKS_FETCH_TIMEOUT_S = 5.0
LEEWAY_MAX_S = 300.0
#: The algorithm each JWK key type may verify: (kty, crv) -> alg.
#: Shorter RSA keys are factorable by a determined attacker; every issuer publishes 2048+.
RSA_MIN_BITS = 2048
ALG_FOR_KEY = {("RSA", None): "RS256", ("EC", "P-256"): "ES256"}


class JwtConfigError(ValueError):
    """An invalid PERSONA_JWT_* setting; the message starts with the variable's name."""


class JwksError(ValueError):
    """A JWKS document that holds no usable RS256/ES256 key."""


@dataclass(frozen=True)
class JwtConfig:
    jwks_file: str = ""
    jwks_url: str = ""
    #: ``{kid or None: [(alg, key)]}`` loaded at start from the JWKS file (URL: empty).
    jwks_keys: Mapping = field(default_factory=dict, repr=False)
    hs256_secret: bytes = field(default=b"", repr=False)
    issuer: str = ""
    audience: tuple = ()
    leeway_s: float = 30.0
    scope_prefix: str = ""


def looks_like_jwt(token: str) -> bool:
    return len(token) <= MAX_TOKEN_BYTES and JWT_SHAPE.match(token) is not None


def parse_jwks(raw: bytes | str) -> dict:
    """``{kid or None: [(alg, key)]}`` of the RS256/ES256 keys in a JWKS document."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwksError(f"not valid JSON ({exc})") from None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise JwksError('not a JWK Set: needs {"keys": [...]}')
    keys: dict = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        alg = ALG_FOR_KEY.get((entry.get("kty"), entry.get("crv")))
        if alg is None or entry.get("alg", alg) != alg:
            continue
        if "d" in entry:  # never configure a private key as a verification key
            raise JwksError(f"key #{n} is a private key; publish only public keys")
        try:
            key = PyJWK(entry, algorithm=alg).key
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise JwksError(f"key #{n} is not a usable {alg} key ({exc})") from None
        if alg == "RS256" and key.key_size < RSA_MIN_BITS:
            raise JwksError(f"key #{n} is an RSA key of {key.key_size} bits; at least "
                            f"{RSA_MIN_BITS} are needed (NIST SP 800-131A)")
        kid = entry.get("kid")
        keys.setdefault(kid if isinstance(kid, str) else None, []).append((alg, key))
    if not keys:
        raise JwksError("holds no RS256 (RSA) or ES256 (EC P-256) signing key")
    return keys


def _read_jwks_file(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read(JWKS_MAX_BYTES + 1)
    except OSError as exc:
        raise JwksError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > JWKS_MAX_BYTES:
        raise JwksError(f"{path} is larger than {JWKS_MAX_BYTES} bytes")
    return parse_jwks(raw)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise JwtConfigError(f"{name} must be an https:// URL (http:// only for localhost), "
                             f"got {url!r}")
    return url


def _secret(env: Mapping[str, str]) -> bytes:
    inline = env.get("PERSONA_JWT_HS256_SECRET", "")
    path = env.get("PERSONA_JWT_HS256_SECRET_FILE", "")
    if inline and path:
        raise JwtConfigError("PERSONA_JWT_HS256_SECRET and PERSONA_JWT_HS256_SECRET_FILE: "
                             "set one, not both")
    name, secret = "PERSONA_JWT_HS256_SECRET", inline.encode()
    if path:
        name = "PERSONA_JWT_HS256_SECRET_FILE"
        try:
            with open(path, "rb") as f:
                secret = f.read(64 * 1024).strip()
        except OSError as exc:
            raise JwtConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not secret and not path:
        return b""
    if len(secret) < MIN_SECRET_BYTES:  # never print the secret, only its length
        raise JwtConfigError(f"{name}: an HS256 secret needs at least {MIN_SECRET_BYTES} bytes, "
                             f"got {len(secret)}")
    if b"-----BEGIN" in secret or secret.startswith((b"ssh-", b"ecdsa-")):
        raise JwtConfigError(f"{name}: looks like a PEM/SSH key; HS256 needs a shared secret, "
                             "RS256/ES256 public keys go in a JWKS")
    return secret


def _leeway(env: Mapping[str, str]) -> float:
    raw = env.get("PERSONA_JWT_LEEWAY_S", "")
    try:
        value = float(raw) if raw else 30.0
    except ValueError:
        raise JwtConfigError(f"PERSONA_JWT_LEEWAY_S must be a number, got {raw!r}") from None
    if not 0 <= value <= LEEWAY_MAX_S:  # also refuses nan
        raise JwtConfigError(f"PERSONA_JWT_LEEWAY_S must be between 0 and {LEEWAY_MAX_S:g}, "
                             f"got {raw}")
    return value


def jwt_config(env: Mapping[str, str]) -> JwtConfig | None:
    """The JWT settings from ``env``, None if JWTs are off; JwtConfigError if invalid."""
    jwks_file = env.get("PERSONA_JWT_JWKS_FILE", "")
    jwks_url = env.get("PERSONA_JWT_JWKS_URL", "").strip()
    if jwks_file and jwks_url:
        raise JwtConfigError("PERSONA_JWT_JWKS_FILE and PERSONA_JWT_JWKS_URL: set one, not both")
    keys = {}
    if jwks_file:
        try:
            keys = _read_jwks_file(jwks_file)
        except JwksError as exc:
            raise JwtConfigError(f"PERSONA_JWT_JWKS_FILE: {exc}") from None
    if jwks_url:
        _check_url("PERSONA_JWT_JWKS_URL", jwks_url)
    secret = _secret(env)
    leeway = _leeway(env)
    issuer = env.get("PERSONA_JWT_ISSUER", "").strip()
    audience = tuple(a.strip() for a in env.get("PERSONA_JWT_AUDIENCE", "").split(",")
                     if a.strip())
    prefix = env.get("PERSONA_JWT_SCOPE_PREFIX", "")
    if prefix and (prefix != prefix.strip() or " " in prefix):
        raise JwtConfigError(f"PERSONA_JWT_SCOPE_PREFIX must not contain spaces, got {prefix!r}")
    if not (jwks_file or jwks_url or secret):
        for name in ("PERSONA_JWT_ISSUER", "PERSONA_JWT_AUDIENCE", "PERSONA_JWT_LEEWAY_S",
                     "PERSONA_JWT_SCOPE_PREFIX"):
            if env.get(name):
                raise JwtConfigError(f"{name} is set but no key is: set PERSONA_JWT_JWKS_FILE, "
                                     "PERSONA_JWT_JWKS_URL or PERSONA_JWT_HS256_SECRET(_FILE)")
        return None
    return JwtConfig(jwks_file=jwks_file, jwks_url=jwks_url, jwks_keys=keys,
                     hs256_secret=secret, issuer=issuer, audience=audience, leeway_s=leeway,
                     scope_prefix=prefix)
