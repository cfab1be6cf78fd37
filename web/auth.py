"""Request authentication: API keys or JWT bearers with scopes (``ingest``, ``read``, ``admin``,
``metrics``).

The keys are parsed once at start by ``app.settings`` (``PERSONA_API_KEYS`` and
``PERSONA_API_KEYS_FILE``, format in ``app.apikeys``); every check compares digests in
constant time against all configured keys. ``admin`` implies every scope.

When JWTs are configured (``PERSONA_JWT_*``, ``app.jwt_auth``), a bearer that looks like a
JWT (three base64url parts) is verified as one first; if it is not a valid token it is
still compared with the API keys (an API key may contain dots). ``?key=`` stays API keys only.

The caller's scopes are left on the request as ``request[SCOPES_KEY]``; they hold
``publishable`` for a browser key (an entry marked so, or any key sent as ``?key=``), which
``web.ingest`` restricts (``app.identity``). JWT bearers are server credentials.
"""
from __future__ import annotations

import hmac
from functools import wraps
from typing import Callable

from app.apikeys import PUBLISHABLE, SCOPES, digest
from app.jwt_auth import Verifier, looks_like_jwt
from app.settings import settings

UNAUTHORIZED = {"error": "unauthorized", "detail": "a valid API key or token is required"}
#: This worker's JWT verifier (and JWKS cache); None when JWTs are not configured.
JWT = Verifier(settings.jwt) if settings.jwt is not None else None
SCOPES_KEY = "persona.scopes"


def scopes_for(header: str | None, keys=None) -> frozenset | None:
    """Scopes of the bearer key in an Authorization header, None if not valid."""
    keys = settings.api_keys if keys is None else keys
    if not header or not header.startswith("Bearer "):
        return None
    presented = digest(header[len("Bearer "):].strip())
    found = None
    for known, scopes in keys:  # no early exit: same time for every key
        if hmac.compare_digest(known, presented):
            found = scopes
    return found


async def bearer_scopes(header: str | None, verifier=None, keys=None) -> frozenset | None:
    """Scopes of the bearer in an Authorization header, JWT or API key; None if not valid."""
    verifier = JWT if verifier is None else verifier
    if verifier is not None and header and header.startswith("Bearer "):
        token = header[len("Bearer "):].strip()
        if looks_like_jwt(token):
            scopes = await verifier.scopes(token)
            if scopes is not None:
                return scopes
    return scopes_for(header, keys)


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
                scopes = scopes_for("Bearer " + request.query["key"])
                if scopes is not None and not scopes <= {"ingest", PUBLISHABLE}:
                    return view.json({"error": "forbidden", "detail": "only ingest-only keys "
                                      "may be sent as ?key="}, status=403)
                if scopes is not None:
                    scopes = scopes | {PUBLISHABLE}
            else:
                scopes = await bearer_scopes(header)
            if scopes is None:
                return view.json(UNAUTHORIZED, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="persona"'})
            if scope not in scopes and "admin" not in scopes:
                return view.json({"error": "forbidden", "detail": f"needs scope {scope!r}"},
                                 status=403)
            request[SCOPES_KEY] = scopes
            return await fun(view, request, *args, **kwargs)

        return checked

    return decorator
