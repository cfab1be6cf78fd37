"""JWT / OAuth 2.0 bearer tokens: configuration and verification (PyJWT, no Faust).

``jwt_config(env)`` reads the ``PERSONA_JWT_*`` variables; ``app.settings`` calls it at
start, so a bad JWKS file or secret stops the worker with one line naming the variable.
``Verifier(config).scopes(token)`` is what ``web.auth`` awaits for a bearer that looks
like a JWT: the token's Persona scopes, or None if it is not valid.

Algorithms are pinned per key kind, never taken from the token alone:
- ``HS256`` only with the shared secret (PERSONA_JWT_HS256_SECRET or ``_FILE``);
- ``RS256`` only with an RSA key and ``ES256`` only with a P-256 key of the JWKS
  (PERSONA_JWT_JWKS_FILE or PERSONA_JWT_JWKS_URL); other key types in the set are ignored;
- anything else (``none``, HS384, PS256, ...) is refused.
So an HS256 token "signed" with the RSA public key is refused: without a secret HS256 is
not accepted at all, and with one only that secret verifies it.

Claims: ``exp`` is required, ``exp``/``nbf``/``iat`` are checked with a leeway
(PERSONA_JWT_LEEWAY_S, default 30 s); ``iss`` must equal PERSONA_JWT_ISSUER and ``aud``
contain one of PERSONA_JWT_AUDIENCE when those are set (PyJWT refuses a token with an
``aud`` claim when no audience is configured). Scopes come from ``scope`` (space
separated) and ``scp`` (list or space separated string). With PERSONA_JWT_SCOPE_PREFIX
(e.g. ``persona:``) only scopes with that prefix count, prefix removed
(``persona:read`` -> ``read``); without it the names are taken as they are. Names that
are not Persona scopes (``ingest``, ``read``, ``admin``, ``metrics``) are ignored.

The JWKS is cached; it is loaded again (file read in a thread, URL fetched with aiohttp:
never blocking the event loop) when a token names an unknown ``kid`` or the cache is
older than ``JWKS_MAX_AGE_S``, at most once per ``REFRESH_MIN_INTERVAL_S``. A failed
reload keeps the keys already known.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK

log = logging.getLogger(__name__)

PERSONA_SCOPES = ("ingest", "read", "admin", "metrics")  # same as app.apikeys.SCOPES
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


def map_scopes(claims: Mapping, prefix: str = "") -> frozenset:
    """Persona scopes named by the ``scope`` and ``scp`` claims (see module doc)."""
    names: list[str] = []
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            names += value.split()
        elif isinstance(value, list):
            names += [v for v in value if isinstance(v, str)]
    if prefix:
        names = [n[len(prefix):] for n in names if n.startswith(prefix)]
    return frozenset(n for n in names if n in PERSONA_SCOPES)


class Verifier:
    """Verifies tokens against one ``JwtConfig``; keeps the JWKS cache of one worker."""

    def __init__(self, config: JwtConfig, clock: Callable[[], float] = time.monotonic,
                 refresh_min_interval_s: float = REFRESH_MIN_INTERVAL_S,
                 max_age_s: float = JWKS_MAX_AGE_S):
        self.config, self._clock = config, clock
        self.refresh_min_interval_s, self.max_age_s = refresh_min_interval_s, max_age_s
        self._keys = dict(config.jwks_keys)
        self._loaded_at = clock() if self._keys else float("-inf")
        self._last_attempt = float("-inf")
        self._lock: asyncio.Lock | None = None
        #: JWKS loads done after start (tests and logs).
        self.refreshes = 0

    @property
    def uses_jwks(self) -> bool:
        return bool(self.config.jwks_file or self.config.jwks_url)

    async def scopes(self, token: str) -> frozenset | None:
        """Persona scopes of a valid token; None if invalid (never raises for a bad token)."""
        if not looks_like_jwt(token):
            return None
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg == "HS256" and self.config.hs256_secret:
                key = self.config.hs256_secret
            elif alg in ("RS256", "ES256") and self.uses_jwks:
                kid = header.get("kid")
                key = await self._key_for(alg, kid if isinstance(kid, str) else None)
                if key is None:
                    log.debug("JWT refused: no %s key with kid %r in the JWKS", alg, kid)
                    return None
            else:
                log.debug("JWT refused: algorithm %r is not accepted here", alg)
                return None
            claims = jwt.decode(
                token, key, algorithms=[alg], leeway=self.config.leeway_s,
                issuer=self.config.issuer or None,
                audience=list(self.config.audience) or None,
                options={"require": ["exp"] + (["iss"] if self.config.issuer else [])
                         + (["aud"] if self.config.audience else [])})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.debug("JWT refused: %s", exc.__class__.__name__)
            return None
        return map_scopes(claims, self.config.scope_prefix)

    def _find(self, alg: str, kid: str | None):
        if kid is not None:
            candidates = self._keys.get(kid, [])
        else:  # no kid: only a set with exactly one key for this algorithm identifies it
            candidates = [k for ks in self._keys.values() for k in ks]
        matching = [key for a, key in candidates if a == alg]
        return matching[0] if len(matching) == 1 else None

    async def _key_for(self, alg: str, kid: str | None):
        key = self._find(alg, kid)
        stale = self._clock() - self._loaded_at > self.max_age_s
        if (key is None or stale) and self._may_refresh():
            await self._refresh()
            key = self._find(alg, kid)
        return key

    def _may_refresh(self) -> bool:
        return self._clock() - self._last_attempt >= self.refresh_min_interval_s

    async def _refresh(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._may_refresh():  # another request reloaded while this one waited
                return
            self._last_attempt = self._clock()
            source = self.config.jwks_file or self.config.jwks_url
            try:
                if self.config.jwks_file:
                    keys = await asyncio.to_thread(_read_jwks_file, self.config.jwks_file)
                else:
                    keys = await _fetch_jwks(self.config.jwks_url)
            except (JwksError, OSError, asyncio.TimeoutError) as exc:
                log.warning("JWKS reload from %s failed, keeping %d known key ids: %s",
                            source, len(self._keys), exc)
                return
            self._keys, self._loaded_at = keys, self._clock()
            self.refreshes += 1
            log.info("JWKS reloaded from %s: %d key ids", source, len(keys))


async def _fetch_jwks(url: str) -> dict:
    import aiohttp  # only workers that fetch a JWKS need it (settings stays light)

    timeout = aiohttp.ClientTimeout(total=JWKS_FETCH_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise JwksError(f"HTTP {resp.status}")
                raw = await resp.content.read(JWKS_MAX_BYTES + 1)
    except aiohttp.ClientError as exc:
        raise JwksError(repr(exc)) from None
    if len(raw) > JWKS_MAX_BYTES:
        raise JwksError(f"larger than {JWKS_MAX_BYTES} bytes")
    return parse_jwks(raw)
