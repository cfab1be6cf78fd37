"""API key entries (``<key>:<scope>[|<scope>...]``) parsed into digests and scopes.

Parsed once at start by ``app.settings``; ``web.auth`` checks requests against the result.
A key may be given as ``sha256:<hex digest>`` so the plain key never sits in the
environment; only digests are kept in memory. ``admin`` implies every scope; ``metrics``
only opens ``GET /metrics`` (give Prometheus its own key).

``publishable`` marks a browser key (README "Browser identity"): ``<key>:publishable`` (or
``<key>:ingest|publishable``) is an ingest key restricted by ``app.auth.identity`` wherever it is
sent; it cannot be combined with any other scope. Every other key is a server key,
except that any key sent as ``?key=`` (only ingest-only keys may be) counts as publishable.
"""
from __future__ import annotations

import hashlib

SCOPES = ("ingest", "read", "admin", "metrics")
#: Shorter keys are guessable (a 1-character key was accepted once); a ``sha256:`` entry is
#: the digest of a key the operator chose, so it cannot be checked and is not.
MIN_KEY_CHARS = 16
PUBLISHABLE = "publishable"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(spec: str, source: str = "PERSONA_API_KEYS") -> list[tuple[bytes, frozenset]]:
    """``[(sha256 digest, scopes)]``; ValueError naming ``source`` and the bad entry."""
    keys = []
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    for n, entry in enumerate(entries, 1):
        key, sep, scopes = entry.rpartition(":")
        shown = f"#{n}"  # by position: the entry holds a secret, never print it
        if not sep or not key:
            raise ValueError(f"{source}: entry {shown} must be <key>:<scope>[|scope]")
        wanted = frozenset(s.strip() for s in scopes.split("|") if s.strip())
        unknown = wanted - set(SCOPES) - {PUBLISHABLE}
        if unknown or not wanted:
            raise ValueError(f"{source}: entry {shown} has unknown scopes {sorted(unknown)}, "
                             f"allowed: {list(SCOPES) + [PUBLISHABLE]}")
        if PUBLISHABLE in wanted:
            if not wanted <= {PUBLISHABLE, "ingest"}:
                raise ValueError(f"{source}: entry {shown}: a publishable key may only ingest "
                                 f"(not {sorted(wanted - {PUBLISHABLE, 'ingest'})})")
            wanted = frozenset({PUBLISHABLE, "ingest"})
        if key.startswith("sha256:"):
            hexdigest = key[len("sha256:"):]
            try:
                value = bytes.fromhex(hexdigest)
            except ValueError:
                value = b""
            if len(value) != 32:
                raise ValueError(f"{source}: entry {shown}: sha256: needs 64 hex digits")
            keys.append((value, wanted))
        else:
            if len(key) < MIN_KEY_CHARS:
                raise ValueError(f"{source}: entry {shown}: a key needs at least "
                                 f"{MIN_KEY_CHARS} characters (got {len(key)}); e.g. "
                                 "python -c 'import secrets; print(secrets.token_urlsafe(24))'")
            keys.append((digest(key), wanted))
    return keys
