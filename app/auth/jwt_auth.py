"""JWT / OAuth 2.0 bearer tokens: configuration and verification (PyJWT, no Faust).

``app.auth.jwt_config.jwt_config(env)`` reads the ``PERSONA_JWT_*`` variables; ``app.settings`` calls it at
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
import logging
import time
from typing import Callable, Mapping

import jwt

from app.auth.jwt_config import (  # noqa: F401  (re-exported: web.auth, app.settings, tests)
    ALG_FOR_KEY,
    JWKS_FETCH_TIMEOUT_S,
    JWKS_MAX_AGE_S,
    JWKS_MAX_BYTES,
    JWT_SHAPE,
    LEEWAY_MAX_S,
    MAX_TOKEN_BYTES,
    MIN_SECRET_BYTES,
    PERSONA_SCOPES,
    REFRESH_MIN_INTERVAL_S,
    JwksError,
    JwtConfig,
    JwtConfigError,
    _read_jwks_file,
    jwt_config,
    looks_like_jwt,
    parse_jwks,
)

log = logging.getLogger(__name__)

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


def numeric_times(claims: dict) -> bool:
    """RFC 7519 NumericDate: ``exp``, ``nbf`` and ``iat`` are JSON numbers. PyJWT casts a
    numeric string (``"exp": "99999999999"``) and accepts it; a token minted that way is not
    one a real issuer wrote."""
    return all(isinstance(claims[c], (int, float)) and not isinstance(claims[c], bool)
               for c in ("exp", "nbf", "iat") if c in claims)


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

    @property
    def keys_loaded(self) -> bool:
        """False while a configured JWKS has not loaded yet (``/ready`` answers 503 then)."""
        return not self.uses_jwks or bool(self._keys)

    async def load_at_start(self, retry_s: float = 2.0) -> None:
        """Load a JWKS URL's keys before the worker says it is ready, retrying until they
        load. A worker that cannot verify any token must not report ready: every JWT
        would be refused while load balancers send it traffic."""
        warned = False
        while not self.keys_loaded:
            self._last_attempt = float("-inf")
            await self._refresh()
            if self.keys_loaded:
                break
            if not warned:
                log.error("PERSONA_JWT_JWKS_URL: cannot load the JWKS from %s; /ready answers "
                          "503 until it loads (retrying every %.0fs)", self.config.jwks_url,
                          retry_s)
                warned = True
            await asyncio.sleep(retry_s)

    async def scopes(self, token: str) -> frozenset | None:
        """Persona scopes of a valid token; None if invalid (never raises for a bad token)."""
        claims = await self.claims(token)
        return None if claims is None else map_scopes(claims, self.config.scope_prefix)

    async def claims(self, token: str) -> dict | None:
        """The claims of a valid token; None if invalid (never raises for a bad token)."""
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
        if not numeric_times(claims):
            log.debug("JWT refused: exp, nbf or iat is not a number")
            return None
        return claims

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
