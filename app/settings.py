"""Every Persona setting, read once from the environment into one object.

Faust's own settings keep Faust's environment names (``BROKER_URL`` etc. are read
by Faust itself); this module holds Persona's settings and the one switch that
adapts Faust to the bundled local broker. Each variable is documented in README.md.
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Mapping

LOCAL_BROKER_PORT_DEFAULT = 19092
#: Arguments of the ``faust`` command that runs a worker (the Procfile says the same).
#: uvloop: ~13 % less worker CPU per event than asyncio's loop (bench, see README).
WORKER_ARGV = ("-L", "uvloop", "-A", "app.main", "worker", "-l", "info")


def _number(env: Mapping[str, str], name: str, default, cast):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number ({cast.__name__}), got {raw!r}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be a boolean (1/0/true/false), got {raw!r}")


@dataclass(frozen=True)
class Settings:
    broker_url: str
    #: True when Faust must use the settings the bundled Tansu broker needs
    #: (see ARCHITECTURE.md / BROKER.md): short group timeouts, one record per
    #: producer batch.
    local_broker_compat: bool
    partitions: int
    web_host: str
    web_port: int
    data_dir: str
    session_idle_s: int
    standby_replicas: int
    api_keys: str
    store: str
    #: Optional TLS for the web server: PEM certificate chain and key paths.
    tls_cert: str = ""
    tls_key: str = ""
    #: CA bundle workers use to verify each other when TLS is on (self-signed setups).
    tls_ca: str = ""
    #: Optional file of API key entries (same format as PERSONA_API_KEYS, one or more per line).
    api_keys_file: str = ""
    #: POST /v1/events limits: request body bytes and events per request (over -> 413).
    ingest_max_bytes: int = 1024 * 1024
    ingest_max_events: int = 500
    #: Seconds to wait for the broker to acknowledge an ingest request (then 503).
    ingest_timeout_s: float = 10.0
    #: Origins allowed to call POST /v1/events from a browser (CORS); empty = none, "*" = any.
    cors_origins: tuple = ()
    #: Ingest-only key the demo shop page (/demo/shop) sends with; empty = demo disabled.
    demo_key: str = ""
    #: Webhook subscriptions, raw: a JSON list (PERSONA_WEBHOOKS) or the path of a JSON file
    #: (PERSONA_WEBHOOKS_FILE); parsed and validated by ``app.webhooks.configured()``.
    webhooks: str = ""
    webhooks_file: str = ""
    #: Delivery: attempts before webhooks-dlq, full-jitter backoff base and cap (seconds),
    #: deliveries in flight per worker.
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 0.5
    webhook_backoff_max_s: float = 60.0
    webhook_concurrency: int = 8
    #: The customers agent takes up to this many events, or what arrived within
    #: ``batch_within_s``, and writes each customer's state once per batch.
    batch_max: int = 500
    batch_within_s: float = 0.05
    #: Interval of the abandoned-cart scan (seconds).
    abandon_check_s: float = 60.0

    @property
    def session_idle_ms(self) -> int:
        return self.session_idle_s * 1000


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    user_url = env.get("KAFKA_BROKER_URL", "").strip()
    local_port = _int(env, "PERSONA_LOCAL_BROKER_PORT", LOCAL_BROKER_PORT_DEFAULT)
    broker_url = user_url or f"kafka://127.0.0.1:{local_port}"
    # The compatibility switch defaults to "on" only for the bundled broker.
    compat = _bool(env, "PERSONA_LOCAL_BROKER_COMPAT", not user_url)
    web_port = _int(env, "PORT", _int(env, "PERSONA_WEB_PORT", 6066))
    data_dir = env.get("PERSONA_DATA_DIR") or os.path.join("data", f"worker-{web_port}")
    return Settings(
        broker_url=broker_url,
        local_broker_compat=compat,
        partitions=_int(env, "PERSONA_PARTITIONS", 8),
        web_host=env.get("PERSONA_WEB_HOST", "127.0.0.1"),
        web_port=web_port,
        data_dir=data_dir,
        session_idle_s=_int(env, "SESSION_IDLE_S", 1800),
        standby_replicas=_int(env, "PERSONA_STANDBY_REPLICAS", 0),
        api_keys=env.get("PERSONA_API_KEYS", ""),
        store=env.get("PERSONA_STORE", "rocksdb://"),
        tls_cert=env.get("PERSONA_TLS_CERT", ""),
        tls_key=env.get("PERSONA_TLS_KEY", ""),
        tls_ca=env.get("PERSONA_TLS_CA", ""),
        api_keys_file=env.get("PERSONA_API_KEYS_FILE", ""),
        ingest_max_bytes=_int(env, "PERSONA_INGEST_MAX_BYTES", 1024 * 1024),
        ingest_max_events=_int(env, "PERSONA_INGEST_MAX_EVENTS", 500),
        ingest_timeout_s=float(env.get("PERSONA_INGEST_TIMEOUT_S") or 10.0),
        cors_origins=tuple(o.strip().rstrip("/") for o in env.get("PERSONA_CORS_ORIGINS", "").split(",")
                           if o.strip()),
        demo_key=env.get("PERSONA_DEMO_KEY", ""),
        webhooks=env.get("PERSONA_WEBHOOKS", ""),
        webhooks_file=env.get("PERSONA_WEBHOOKS_FILE", ""),
        webhook_max_attempts=max(1, _int(env, "PERSONA_WEBHOOK_MAX_ATTEMPTS", 6)),
        webhook_backoff_s=_float(env, "PERSONA_WEBHOOK_BACKOFF_S", 0.5),
        webhook_backoff_max_s=_float(env, "PERSONA_WEBHOOK_BACKOFF_MAX_S", 60.0),
        webhook_concurrency=max(1, _int(env, "PERSONA_WEBHOOK_CONCURRENCY", 8)),
        abandon_check_s=_float(env, "PERSONA_ABANDON_CHECK_S", 60.0),
        batch_max=max(1, _int(env, "PERSONA_BATCH_MAX", 500)),
        batch_within_s=_float(env, "PERSONA_BATCH_WITHIN_S", 0.05),
    )


def faust_options(s: Settings) -> dict:
    """Faust ``App`` keyword arguments derived from Persona's settings."""
    opts = dict(
        broker=s.broker_url,
        store=s.store,
        topic_partitions=s.partitions,
        web_host=s.web_host,
        web_port=s.web_port,
        datadir=s.data_dir,
        table_standby_replicas=s.standby_replicas,
        # Faust's default views dump tables and cluster internals without auth.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    if s.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(s.tls_cert, s.tls_key or None)
        opts.update(web_ssl_context=ctx, canonical_url=f"https://{s.web_host}:{s.web_port}")
    # Let the producer batch changelog records (bench: -26% worker CPU/event). On the
    # bundled broker this needs app.broker_compat (true end offsets for restores).
    opts.update(producer_linger=0.005)
    if s.local_broker_compat:
        opts.update(
            broker_rebalance_timeout=10.0,
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
        )
    return opts


settings = load()
