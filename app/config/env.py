"""Parsing one environment variable into a checked value, for ``app.settings``.

Each helper returns the default when the variable is unset or empty, and raises
``ConfigError`` (its message starts with the variable's name) for anything it cannot take,
so ``app.settings`` can stop the worker at start naming the variable.
"""
from __future__ import annotations

import difflib
import math
from typing import Mapping

#: Every PERSONA_* variable any part of Persona reads (the worker, and the command-line tools'
#: own: PERSONA_ADMIN_KEY, PERSONA_READ_KEY). A PERSONA_* variable not listed stops the
#: worker at start (``unknown_variable``): a misspelled one would otherwise be ignored, and
#: e.g. PERSONA_IDENTITY_SECERT would leave identity verification off without a word.
#: tests/unit/test_settings.py checks this list against the code and the settings table.
KNOWN_VARIABLES = frozenset("""
PERSONA_ABANDON_CHECK_S PERSONA_ADMIN_KEY PERSONA_ALIAS_BROWSER_GRACE_S
PERSONA_ALLOW_UNTESTED_VERSIONS PERSONA_API_KEYS PERSONA_API_KEYS_FILE PERSONA_BATCH_MAX
PERSONA_BATCH_WITHIN_S PERSONA_CORS_ORIGINS PERSONA_DATA_DIR PERSONA_DEMO_KEY PERSONA_FAILPOINT
PERSONA_FETCH_MAX_WAIT_MS PERSONA_FETCH_MIN_BYTES PERSONA_FLUSH_INTERVAL_S PERSONA_FLUSH_MAX_KEYS
PERSONA_GC PERSONA_GROUP_HEARTBEAT_S PERSONA_GROUP_REBALANCE_TIMEOUT_S
PERSONA_GROUP_SESSION_TIMEOUT_S PERSONA_IDENTITY_SECRET PERSONA_IDENTITY_SECRET_FILE
PERSONA_INGEST_MAX_BYTES PERSONA_INGEST_MAX_EVENTS PERSONA_INGEST_TIMEOUT_S PERSONA_JWT_AUDIENCE
PERSONA_JWT_HS256_SECRET PERSONA_JWT_HS256_SECRET_FILE PERSONA_JWT_ISSUER PERSONA_JWT_JWKS_FILE
PERSONA_JWT_JWKS_URL PERSONA_JWT_LEEWAY_S PERSONA_JWT_SCOPE_PREFIX PERSONA_LOCAL_BROKER_COMPAT
PERSONA_LOCAL_BROKER_PORT PERSONA_METRICS PERSONA_PARTITIONS PERSONA_PUBLISHABLE_TYPES
PERSONA_RATE_INGEST PERSONA_RATE_PUBLISHABLE PERSONA_RATE_READ PERSONA_READ_CACHE_KEYS
PERSONA_READ_KEY PERSONA_REPLICATION_FACTOR PERSONA_MIN_INSYNC_REPLICAS PERSONA_SHADOW PERSONA_STANDBY_REPLICAS PERSONA_STORE PERSONA_TLS_CA
PERSONA_TLS_CERT PERSONA_TLS_KEY PERSONA_TRUSTED_PROXY_HOPS PERSONA_WEBHOOKS
PERSONA_WEBHOOKS_FILE PERSONA_WEBHOOK_BACKOFF_MAX_S PERSONA_WEBHOOK_BACKOFF_S
PERSONA_WEBHOOK_CONCURRENCY PERSONA_WEBHOOK_MAX_ATTEMPTS PERSONA_WEB_BIND PERSONA_WEB_HOST
PERSONA_WEB_PORT
PERSONA_WORKER_ID
""".split())


class ConfigError(ValueError):
    """An invalid setting; the message starts with the variable's name."""


def unknown_variable(env: Mapping[str, str]) -> str | None:
    """The message for the first PERSONA_* variable that is not a setting (None if none),
    with the nearest known name."""
    for name in sorted(env):
        if name.startswith("PERSONA_") and name not in KNOWN_VARIABLES:
            tails = {known[len("PERSONA_"):]: known for known in KNOWN_VARIABLES}
            near = difflib.get_close_matches(name[len("PERSONA_"):], tails, n=1, cutoff=0.75)
            hint = f" (did you mean {tails[near[0]]}?)" if near else ""
            return f"{name}: not a Persona setting{hint}; see the settings table in docs"
    return None


def _number(env: Mapping[str, str], name: str, default, cast):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number ({cast.__name__}), got {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
    value = _number(env, name, default, int)
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


#: Upper bound of any duration or rate setting unless a tighter one is given: a day.
FLOAT_MAX = 86_400.0


def env_float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0,
              hi: float = FLOAT_MAX) -> float:
    value = _number(env, name, default, float)
    if not lo <= value <= hi:  # also refuses nan
        raise ConfigError(f"{name} must be a number between {lo:g} and {hi:g}, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0/true/false), got {raw!r}")
