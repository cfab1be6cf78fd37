"""Request authentication: API keys or JWT bearers with scopes (``ingest``, ``read``, ``admin``,
``metrics``).

The keys are parsed once at start by ``app.settings`` (``PERSONA_API_KEYS`` and
``PERSONA_API_KEYS_FILE``, format in ``app.auth.apikeys``); every check compares digests in
constant time against all configured keys. ``admin`` implies every scope.

When JWTs are configured (``PERSONA_JWT_*``, ``app.auth.jwt_auth``), a bearer that looks like a
JWT (three base64url parts) is verified as one first; if it is not a valid token it is
still compared with the API keys (an API key may contain dots). ``?key=`` stays API keys only.

The caller's scopes are left on the request as ``request[SCOPES_KEY]``; they hold
``publishable`` for a browser key (an entry marked so, or any key sent as ``?key=``), which
``web.ingest`` restricts (``app.auth.identity``). JWT bearers are server credentials.
Who the caller is, for rate limits (``web.ratelimit``), is ``request[PRINCIPAL_KEY]``: a
digest prefix of the API key, or the JWT's issuer and subject. ``require`` applies the
read limit, and the first (before the body is read) check of the ingest limit.
The caller's key id for the audit topic (``app.observability.audit``: a digest prefix of the key, or the
JWT's subject) is ``request[KEY_ID_KEY]``.
"""
from __future__ import annotations

import hashlib
import hmac
from functools import wraps
from typing import Callable

from app.auth.apikeys import PUBLISHABLE, SCOPES, digest
from app.auth.jwt_auth import Verifier, looks_like_jwt, map_scopes
from app.main import app
from app.observability import audit
from app.settings import settings
from web import ratelimit
from web.ratelimit import PRINCIPAL_KEY

UNAUTHORIZED = {"error": "unauthorized", "detail": "a valid API key or token is required"}
#: This worker's JWT verifier (and JWKS cache); None when JWTs are not configured.
JWT = Verifier(settings.jwt) if settings.jwt is not None else None


@app.task
async def load_jwks() -> None:
    """A JWKS URL is loaded once at start; ``/ready`` waits for it (``Verifier.keys_loaded``)."""
    if JWT is not None:
        await JWT.load_at_start()
SCOPES_KEY = "persona.scopes"
KEY_ID_KEY = "persona.key_id"


def scopes_of(presented: bytes, keys) -> frozenset | None:
    """Scopes of the key whose digest is ``presented``, None if none."""
    found = None
    for known, scopes in keys:  # no early exit: same time for every key
        if hmac.compare_digest(known, presented):
            found = scopes
    return found


def key_principal(key: str) -> str:
    """Who an API key is, for rate limits: a prefix of its digest (never the key)."""
    return principal_of(digest(key).hex())


def principal_of(hexdigest: str) -> str:
    return "key:" + hexdigest[:32]


def api_key_identity(key: str, keys=None) -> tuple:
    """``(scopes, principal, audit key id)`` of an API key, all from one digest of it;
    ``(None, None, None)`` if it is not a configured key."""
    presented = digest(key.strip())
    scopes = scopes_of(presented, settings.api_keys if keys is None else keys)
    if scopes is None:
        return None, None, None
    hexed = presented.hex()
    return scopes, principal_of(hexed), audit.key_id_of(hexed)


def jwt_principal(claims: dict, token: str) -> str:
    """Who a JWT bearer is, for rate limits: issuer and subject; a token without ``sub``
    is its own principal (each such token gets its own bucket)."""
    sub, iss = claims.get("sub"), claims.get("iss")
    if isinstance(sub, str) and sub:
        return "jwt:" + hashlib.sha256(f"{iss}\0{sub}".encode()).hexdigest()[:32]
    return "jwt-token:" + digest(token).hex()[:32]


async def bearer_auth(header: str | None, verifier=None, keys=None) -> tuple:
    """``(scopes, principal)`` of the bearer in an Authorization header, JWT or API key;
    ``(None, None)`` if not valid."""
    return (await bearer_identity(header, verifier, keys))[:2]


async def bearer_identity(header: str | None, verifier=None, keys=None) -> tuple:
    """``(scopes, principal, audit key id)``; ``(None, None, None)`` if not valid."""
    verifier = JWT if verifier is None else verifier
    if verifier is not None and header and header.startswith("Bearer "):
        token = header[len("Bearer "):].strip()
        if looks_like_jwt(token):
            claims = await verifier.claims(token)
            if claims is not None:
                return (map_scopes(claims, verifier.config.scope_prefix),
                        jwt_principal(claims, token), audit.jwt_key_id(claims, token))
    if not header or not header.startswith("Bearer "):
        return None, None, None
    return api_key_identity(header[len("Bearer "):], keys)


async def bearer_scopes(header: str | None, verifier=None, keys=None) -> frozenset | None:
    """Scopes of the bearer in an Authorization header, JWT or API key; None if not valid."""
    return (await bearer_auth(header, verifier, keys))[0]


def require(scope: str, query_key: bool = False) -> Callable:
    """View-method decorator: 401 without a valid key, 403 without the scope.

    ``query_key=True`` (only for ``ingest``, i.e. ``POST /v1/events``) also accepts the
    key as ``?key=`` when no Authorization header is sent, because ``sendBeacon``
    cannot set headers. Such a key must be an ingest-only ("publishable") key: a key
    with any other scope in a URL is refused with 403, since URLs end up in logs. A key
    sent so is publishable whatever its entry says.
    """
    assert scope in SCOPES
    assert not query_key or scope == "ingest"

    def decorator(fun: Callable) -> Callable:
        @wraps(fun)
        async def checked(view, request, *args, **kwargs):
            header = request.headers.get("Authorization")
            if header is None and query_key and request.query.get("key"):
                scopes, principal, key_id = api_key_identity(request.query["key"])
                if scopes is not None and not scopes <= {"ingest", PUBLISHABLE}:
                    return view.json({"error": "forbidden", "detail": "only ingest-only keys "
                                      "may be sent as ?key="}, status=403)
                if scopes is not None:
                    scopes = scopes | {PUBLISHABLE}
            else:
                scopes, principal, key_id = await bearer_identity(header)
            if scopes is None:
                return view.json(UNAUTHORIZED, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="persona"'})
            if scope not in scopes and "admin" not in scopes:
                return view.json({"error": "forbidden", "detail": f"needs scope {scope!r}"},
                                 status=403)
            request[SCOPES_KEY], request[PRINCIPAL_KEY] = scopes, principal
            request[KEY_ID_KEY] = key_id
            limited = ratelimit.admit(scope, request)
            if limited is not None:
                return view.json(limited[0], status=429, headers=limited[1])
            return await fun(view, request, *args, **kwargs)

        return checked

    return decorator
