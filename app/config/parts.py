"""The settings that are more than one number: API keys (inline and file, no key twice), the
worker's TLS files (loaded once to prove they are usable), the crash points, the demo key's
scope, the consumer group's timers and this worker's stable id in the group. Each raises ``ConfigError`` naming the variable."""
from __future__ import annotations

import os
import re
import ssl
from typing import Mapping

from app.auth.apikeys import PUBLISHABLE, digest, parse_keys
from app.config.env import ConfigError
from app.config.env import env_float as _float
from app.consistency.failpoints import POINTS


def api_keys(env: Mapping[str, str]) -> tuple:
    keys = parse_keys(env.get("PERSONA_API_KEYS", ""), "PERSONA_API_KEYS")
    path = env.get("PERSONA_API_KEYS_FILE", "")
    if path:
        try:
            with open(path) as f:
                lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise ConfigError(f"PERSONA_API_KEYS_FILE: cannot read {path}: {exc.strerror}") from None
        keys += parse_keys(",".join(lines), f"PERSONA_API_KEYS_FILE {path}")
    seen: dict = {}
    for n, (key_digest, _) in enumerate(keys, 1):
        if key_digest in seen:  # by position: an entry holds a secret, never print it
            raise ConfigError(f"PERSONA_API_KEYS: the same key is listed twice (entries "
                              f"#{seen[key_digest]} and #{n}, counting PERSONA_API_KEYS_FILE's "
                              "after it); give each key once, with all its scopes")
        seen[key_digest] = n
    return tuple(keys)


def tls(env: Mapping[str, str]) -> tuple[str, str, str]:
    cert, key, ca = (env.get(f"PERSONA_TLS_{n}", "") for n in ("CERT", "KEY", "CA"))
    if key and not cert:
        raise ConfigError("PERSONA_TLS_KEY is set but PERSONA_TLS_CERT is not")
    for name, path in (("PERSONA_TLS_CERT", cert), ("PERSONA_TLS_KEY", key), ("PERSONA_TLS_CA", ca)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{name}: no such file {path!r}")
    try:
        if cert:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key or None)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"PERSONA_TLS_CERT/PERSONA_TLS_KEY: not a usable PEM chain and key "
                          f"({exc})") from None
    try:
        if ca:
            ssl.create_default_context(cafile=ca)
    except ssl.SSLError as exc:
        raise ConfigError(f"PERSONA_TLS_CA: not a usable PEM CA bundle ({exc})") from None
    return cert, key, ca


def failpoints(env: Mapping[str, str]) -> tuple:
    names = tuple(n.strip() for n in env.get("PERSONA_FAILPOINT", "").split(",") if n.strip())
    for name in names:
        if name not in POINTS:
            raise ConfigError(f"PERSONA_FAILPOINT: unknown point {name!r}; "
                              f"known: {', '.join(sorted(POINTS))}")
    return names


def check_demo_key(demo_key: str, api_keys: tuple) -> None:
    """The demo page publishes its key to anyone who opens ``/demo/shop``: it must be one of
    the configured keys and may only ingest (a publishable key), never read or administer."""
    if not demo_key:
        return
    scopes = dict(api_keys).get(digest(demo_key))
    if scopes is None:
        raise ConfigError("PERSONA_DEMO_KEY: not one of the configured API keys "
                          "(PERSONA_API_KEYS); give it as <key>:publishable there")
    if not scopes <= {"ingest", PUBLISHABLE}:
        raise ConfigError(f"PERSONA_DEMO_KEY: the demo page publishes this key, so it may only "
                          f"ingest (configure it as <key>:publishable), not "
                          f"{sorted(scopes - {'ingest', PUBLISHABLE})}")


def group_timers(env: Mapping[str, str]) -> tuple[float, float, float]:
    """Session timeout, heartbeat interval, rebalance timeout; Kafka's own limits checked
    here (a broker refuses a session outside 6-1800 s by default, and a heartbeat must fit
    three times in a session) so a bad value stops the worker rather than its group join."""
    session = _float(env, "PERSONA_GROUP_SESSION_TIMEOUT_S", 10.0, 6.0, 1800.0)
    heartbeat = _float(env, "PERSONA_GROUP_HEARTBEAT_S", min(1.0, session / 3), 0.1)
    if heartbeat > session / 3:
        raise ConfigError(f"PERSONA_GROUP_HEARTBEAT_S must be at most a third of "
                          f"PERSONA_GROUP_SESSION_TIMEOUT_S ({session / 3:g}), got {heartbeat}")
    rebalance = _float(env, "PERSONA_GROUP_REBALANCE_TIMEOUT_S", 10.0, 1.0, 3600.0)
    return session, heartbeat, rebalance


_WORKER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def worker_id(env: Mapping[str, str]) -> str:
    """PERSONA_WORKER_ID: this worker's stable name in the consumer group (Kafka's static
    membership, ``group.instance.id``), or "" for a member that leaves on stop. Two running
    workers with one id fence each other, so it must be unique; a pod or host name is."""
    value = env.get("PERSONA_WORKER_ID", "").strip()
    if value and not _WORKER_ID.fullmatch(value):
        raise ConfigError(f"PERSONA_WORKER_ID must be 1-64 of A-Z a-z 0-9 . _ -, got {value!r}")
    return value
