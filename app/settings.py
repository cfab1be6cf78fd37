"""Every Persona setting, read once from the environment into one validated object.

The one door for configuration: numbers, booleans, API keys (and their file), webhook
subscriptions (inline or file), TLS files, JWT keys (``app.auth.jwt_auth``), browser identity
(``app.auth.identity``) and the metrics switch (``app.observability.metrics_switch``) are parsed and checked
here, when ``app.settings`` is first imported, before the worker connects. A bad value
raises ``ConfigError`` naming the variable; ``settings`` (the module attribute) then ends
the process with that one line and exit status 2, so a misconfigured worker never starts
half-working. Each variable is documented in docs/operations.md.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Mapping

from app.auth.identity import DEFAULT_PUBLISHABLE_TYPES, browser_config
from app.auth.jwt_config import jwt_config
from app.auth.ratelimit import RateConfig, rate_config
from app.config import parts
from app.config.env import ConfigError, unknown_variable
from app.config.env import env_bool as _bool
from app.config.env import env_float as _float
from app.config.env import env_int as _int
from app.consistency.shadow import shadow_name
from app.kafka.login import KafkaAuth, kafka_auth
from app.observability.gc_policy import gc_mode
from app.observability.metrics_switch import metrics_enabled
from app.webhooks.subscriptions import WebhookConfigError, load_subscriptions

LOCAL_BROKER_PORT_DEFAULT = 19092
#: Fetch wait on the bundled broker, which holds a fetch ~half of it however many records
#: arrive (Faust's 1500 ms: records ~0.75 s old reach the agent; see app/kafka/fetch.py).
FETCH_MAX_WAIT_MS_COMPAT = 100
FAUST_FETCH_MAX_WAIT_MS = 1500  # what Faust 0.15.3 hard-codes (real Kafka answers at once)
#: Fetch wait on real Kafka. The consumer thread serves Faust's recovery calls (high-water
#: marks, committed offsets, seeks) only between fetches, so an idle long poll of Faust's
#: 1500 ms made each of three steps of every start and rebalance wait ~1.5 s: a worker
#: restarted with its data took 5.1 s to /ready, 2.6 s with 250 ms. Idle, the shorter
#: poll costs ~0.4 % of a core in the worker and nothing measurable in the broker.
FETCH_MAX_WAIT_MS_KAFKA = 250
#: Fetch minimum on the bundled broker: under load, fewer and larger fetches (each costs the
#: worker's consumer thread ~2 ms of Python however few records it brings: 46 fetches/s of
#: ~90 records at 4,200 events/s live, ~12/s with this; ~11 % less worker CPU per event).
#: Kafka's default is 1 byte (answer as soon as anything is there).
FETCH_MIN_BYTES_COMPAT = 64 * 1024
#: Arguments of the ``faust`` command that runs a worker (the Procfile says the same).
#: uvloop: ~13 % less worker CPU per event than asyncio's loop (bench, see README).
WORKER_ARGV = ("-L", "uvloop", "-A", "app.main", "worker", "-l", "info")


@dataclass(frozen=True)
class Settings:
    broker_url: str
    #: True when Faust must use the settings the bundled Tansu broker needs (BROKER.md):
    #: short group timers and true end offsets (app/kafka/broker_compat.py).
    local_broker_compat: bool
    partitions: int
    web_host: str
    web_port: int
    data_dir: str
    session_idle_s: int
    standby_replicas: int
    #: ``[(sha256 digest, scopes)]`` from PERSONA_API_KEYS and PERSONA_API_KEYS_FILE.
    api_keys: tuple
    store: str
    #: The address the web server listens on (Faust's ``web_bind``); ``web_host`` is the one
    #: it is reached at (its canonical URL), which may differ behind NAT.
    web_bind: str = "0.0.0.0"
    #: Optional TLS for the web server: PEM certificate chain and key paths.
    tls_cert: str = ""
    tls_key: str = ""
    #: CA bundle workers use to verify each other when TLS is on (self-signed setups).
    tls_ca: str = ""
    #: POST /v1/events limits: request body bytes and events per request (over -> 413).
    ingest_max_bytes: int = 1024 * 1024
    ingest_max_events: int = 500
    #: Seconds to wait for the broker to acknowledge an ingest request (then 503).
    ingest_timeout_s: float = 10.0
    #: Origins allowed to call POST /v1/events from a browser (CORS); empty = none, "*" = any.
    cors_origins: tuple = ()
    #: Publishable key the demo shop page (/demo/shop) sends with; empty = demo disabled.
    demo_key: str = ""
    #: Webhook subscriptions (``app.webhooks.subscriptions.Subscription``), from a JSON list
    #: (PERSONA_WEBHOOKS) or the path of a JSON file (PERSONA_WEBHOOKS_FILE).
    webhooks: tuple = ()
    #: Delivery: attempts before webhooks-dlq, full-jitter backoff base and cap (seconds),
    #: deliveries in flight per worker.
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 0.5
    webhook_backoff_max_s: float = 60.0
    webhook_concurrency: int = 8
    #: The customers agent takes up to this many events, or what arrived within
    #: ``batch_within_s``; its write-back (agents/writeback.py) writes each changed
    #: customer once per ``flush_interval_s``, or sooner when ``flush_max_keys`` wait.
    batch_max: int = 500
    batch_within_s: float = 0.05
    flush_interval_s: float = 10.0
    flush_max_keys: int = 50_000
    #: Flushed values kept decoded in memory per table (``tables.documents``), 0 = none.
    read_cache_keys: int = 20_000
    #: The worker consumer's fetch wait (ms): 100 with the compat switch, else 250.
    #: The bundled broker holds each fetch ~half of it even when records arrive
    #: (app/kafka/fetch.py); real Kafka answers as soon as a record is there.
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS_KAFKA
    #: The worker consumer's fetch minimum (bytes): 64 KiB with the compat switch, else 1.
    #: A fetch waits for this much or ``fetch_max_wait_ms``, whichever comes first.
    fetch_min_bytes: int = 1
    #: Interval of the abandoned-cart scan (seconds).
    abandon_check_s: float = 60.0
    #: JWT bearers (``app.auth.jwt_auth.JwtConfig``, PERSONA_JWT_*); None = API keys only.
    jwt: object = None
    #: Start on other faust-streaming/aiokafka versions than app.kafka was written for
    #: (then without its speed-only paths); default: refuse to start.
    allow_untested_versions: bool = False
    #: Crash points armed for crash-safety tests (``app.consistency.failpoints``); empty in production.
    failpoints: tuple = ()
    #: Browser identity (``app.auth.identity``): types a publishable key may send, and the
    #: identity secret (b"" = identity verification off).
    publishable_types: frozenset = frozenset(DEFAULT_PUBLISHABLE_TYPES)
    identity_secret: bytes = field(default=b"", repr=False)
    #: Token-bucket limits per key (``app.auth.ratelimit``, PERSONA_RATE_*) and trusted proxy hops.
    rates: RateConfig = RateConfig()
    #: PERSONA_SHADOW: "" = the live app, else the name of a shadow app (``app.consistency.shadow``).
    shadow: str = ""
    #: PERSONA_METRICS: record metrics (on) or not (off: ``app.observability.metrics_switch``).
    metrics: bool = True
    #: PERSONA_GC: the worker's garbage-collector policy (``app.observability.gc_policy``).
    gc: str = "tuned"
    #: Consumer-group timers (seconds), the same on every broker: a worker that stops
    #: heartbeating loses its partitions after ``group_session_timeout_s``; members have
    #: ``group_rebalance_timeout_s`` to rejoin a rebalance. Faust's 60 s defaults leave a
    #: killed worker's partitions unserved for a minute.
    group_session_timeout_s: float = 10.0
    group_heartbeat_s: float = 1.0
    group_rebalance_timeout_s: float = 10.0
    #: Copies of every topic Persona creates (events, outbox, dead letters, audit, every
    #: changelog) and how many must acknowledge a write (``min.insync.replicas``): 3 and 2 in
    #: production (docs/kafka.md), 1 and 1 on a one-node local broker.
    replication_factor: int = 1
    min_insync_replicas: int = 1
    #: How every Kafka client logs in (``app.kafka.login``: KAFKA_SECURITY_PROTOCOL, ...).
    kafka_auth: KafkaAuth = KafkaAuth()
    #: How long after an anonymous id is merged into a customer the browser's events for the
    #: old id still follow it (``app.rules.alias.follows``); later ones are dead-lettered.
    alias_browser_grace_s: float = 60.0
    worker_id: str = ""

    @property
    def session_idle_ms(self) -> int:
        return self.session_idle_s * 1000


def load(env: Mapping[str, str] | None = None) -> Settings:
    """All settings from ``env`` (default: the process environment); ConfigError if invalid."""
    env = os.environ if env is None else env
    unknown = unknown_variable(env)
    if unknown:
        raise ConfigError(unknown)
    user_url = env.get("KAFKA_BROKER_URL", "").strip()
    local_port = _int(env, "PERSONA_LOCAL_BROKER_PORT", LOCAL_BROKER_PORT_DEFAULT, 1, 65535)
    broker_url = user_url or f"kafka://127.0.0.1:{local_port}"
    # The compatibility switch defaults to "on" only for the bundled broker.
    compat = _bool(env, "PERSONA_LOCAL_BROKER_COMPAT", not user_url)
    web_port = _int(env, "PORT", _int(env, "PERSONA_WEB_PORT", 6066, 1, 65535), 1, 65535)
    data_dir = env.get("PERSONA_DATA_DIR") or os.path.join("data", f"worker-{web_port}")
    tls_cert, tls_key, tls_ca = parts.tls(env)
    try:
        api_keys = parts.api_keys(env)
        webhooks = load_subscriptions(env.get("PERSONA_WEBHOOKS", ""),
                                      env.get("PERSONA_WEBHOOKS_FILE", ""))
        jwt = jwt_config(env)
        publishable_types, identity_secret = browser_config(env)
        rates = rate_config(env)
        shadow = shadow_name(env)
        metrics = metrics_enabled(env)
        gc = gc_mode(env)
        kafka = kafka_auth(env)
    except (ValueError, WebhookConfigError) as exc:
        raise ConfigError(str(exc)) from None
    session_s, heartbeat_s, rebalance_s = parts.group_timers(env)
    replication = _int(env, "PERSONA_REPLICATION_FACTOR", 1, 1, 16)
    min_isr = _int(env, "PERSONA_MIN_INSYNC_REPLICAS", 1 if replication < 3 else 2, 1, 16)
    if min_isr > replication:
        raise ConfigError(f"PERSONA_MIN_INSYNC_REPLICAS ({min_isr}) must not exceed "
                          f"PERSONA_REPLICATION_FACTOR ({replication}): no write could succeed")
    worker_id = parts.worker_id(env)
    if worker_id and compat:
        raise ConfigError("PERSONA_WORKER_ID: the bundled broker does not keep static members "
                          "(its group re-joins for ever); unset it, or use Apache Kafka")
    demo_key = "" if shadow else env.get("PERSONA_DEMO_KEY", "")
    parts.check_demo_key(demo_key, api_keys)
    return Settings(
        broker_url=broker_url,
        local_broker_compat=compat,
        partitions=_int(env, "PERSONA_PARTITIONS", 8, 1, 10_000),
        web_host=env.get("PERSONA_WEB_HOST", "127.0.0.1"),
        web_bind=env.get("PERSONA_WEB_BIND") or "0.0.0.0",
        web_port=web_port,
        data_dir=data_dir,
        session_idle_s=_int(env, "SESSION_IDLE_S", 1800, 1, 30 * 86_400),
        standby_replicas=_int(env, "PERSONA_STANDBY_REPLICAS", 0, 0, 16),
        api_keys=api_keys,
        store=env.get("PERSONA_STORE", "rocksdb://"),
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
        ingest_max_bytes=_int(env, "PERSONA_INGEST_MAX_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
        ingest_max_events=_int(env, "PERSONA_INGEST_MAX_EVENTS", 500, 1, 100_000),
        ingest_timeout_s=_float(env, "PERSONA_INGEST_TIMEOUT_S", 10.0, 0.1, 300.0),
        cors_origins=tuple(o.strip().rstrip("/") for o in env.get("PERSONA_CORS_ORIGINS", "").split(",")
                           if o.strip()),
        demo_key=demo_key,
        webhooks=() if shadow else webhooks,  # a shadow app sends no webhooks (app.consistency.shadow)
        webhook_max_attempts=_int(env, "PERSONA_WEBHOOK_MAX_ATTEMPTS", 6, 1, 1000),
        webhook_backoff_s=_float(env, "PERSONA_WEBHOOK_BACKOFF_S", 0.5, 0.0, 60.0),
        webhook_backoff_max_s=_float(env, "PERSONA_WEBHOOK_BACKOFF_MAX_S", 60.0),
        webhook_concurrency=_int(env, "PERSONA_WEBHOOK_CONCURRENCY", 8, 1, 1024),
        abandon_check_s=_float(env, "PERSONA_ABANDON_CHECK_S", 60.0, 0.1, 3600.0),
        batch_max=_int(env, "PERSONA_BATCH_MAX", 500, 1, 100_000),
        batch_within_s=_float(env, "PERSONA_BATCH_WITHIN_S", 0.05, 0.0, 10.0),
        flush_interval_s=_float(env, "PERSONA_FLUSH_INTERVAL_S", 10.0, 0.0, 600.0),
        flush_max_keys=_int(env, "PERSONA_FLUSH_MAX_KEYS", 50_000, 1, 10_000_000),
        read_cache_keys=_int(env, "PERSONA_READ_CACHE_KEYS", 20_000, 0, 10_000_000),
        fetch_max_wait_ms=_int(env, "PERSONA_FETCH_MAX_WAIT_MS",
                               FETCH_MAX_WAIT_MS_COMPAT if compat else FETCH_MAX_WAIT_MS_KAFKA,
                               1, 60_000),
        fetch_min_bytes=_int(env, "PERSONA_FETCH_MIN_BYTES",
                             FETCH_MIN_BYTES_COMPAT if compat else 1, 1, 64 * 1024 * 1024),
        jwt=jwt,
        allow_untested_versions=_bool(env, "PERSONA_ALLOW_UNTESTED_VERSIONS", False),
        failpoints=parts.failpoints(env),
        publishable_types=publishable_types,
        identity_secret=identity_secret,
        rates=rates,
        shadow=shadow,
        metrics=metrics,
        gc=gc,
        group_session_timeout_s=session_s,
        group_heartbeat_s=heartbeat_s,
        group_rebalance_timeout_s=rebalance_s,
        kafka_auth=kafka,
        replication_factor=replication,
        min_insync_replicas=min_isr,
        alias_browser_grace_s=_float(env, "PERSONA_ALIAS_BROWSER_GRACE_S", 60.0, 0.0, 3600.0),
        worker_id=worker_id,
    )


def load_or_exit(env: Mapping[str, str] | None = None) -> Settings:
    """``load()``, or one line naming the bad variable on stderr and exit status 2."""
    try:
        return load(env)
    except ConfigError as exc:
        print(f"persona: invalid setting: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


settings = load_or_exit()
