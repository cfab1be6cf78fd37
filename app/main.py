"""The one Faust app, built from ``app.settings`` (``faust_options``). Run with ``faust -A app.main worker``.

Importing it validates every setting first (``app.settings``): Faust only logs errors
raised while autodiscovering agents and views and starts without them, so no setting is
parsed in those modules. ``app.kafka.install`` checks the Faust version and patches;
``app.observability.metrics_switch.configure`` turns recording off when ``PERSONA_METRICS=off``, before
any agent or view runs.
"""
import ssl
import sys
from pathlib import Path

import faust

from app.consistency import failpoints
from app.consistency.shadow import app_id
from app.kafka import install as install_kafka_plumbing
from app.kafka import stop_at_start
from app.kafka.login import login_problem
from app.observability import metrics_switch
from app.settings import Settings, settings


def faust_options(s: Settings) -> dict:
    """Faust ``App`` keyword arguments derived from Persona's settings."""
    opts = dict(
        broker=s.broker_url,
        store=s.store,
        topic_partitions=s.partitions,
        web_host=s.web_host,
        web_bind=s.web_bind,
        web_port=s.web_port,
        datadir=s.data_dir,
        table_standby_replicas=s.standby_replicas,
        # Every topic Faust creates (changelogs included) gets this many copies; a write is
        # acknowledged once min.insync.replicas of them have it (acks=all, checked at start).
        topic_replication_factor=s.replication_factor,
        producer_acks=-1,
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
    credentials = s.kafka_auth.faust_credentials()  # SASL and/or TLS to the cluster
    if credentials is not None:
        opts.update(broker_credentials=credentials)
    # Let the producer batch changelog records (bench: -26% worker CPU/event). On the
    # bundled broker this needs app.kafka.broker_compat (true end offsets for restores).
    opts.update(producer_linger=0.005)
    # The same group timers on every broker (Faust's 60 s would leave a killed worker's
    # partitions unserved for a minute); PERSONA_GROUP_* in app.settings.
    opts.update(
        broker_rebalance_timeout=s.group_rebalance_timeout_s,
        broker_session_timeout=s.group_session_timeout_s,
        broker_heartbeat_interval=s.group_heartbeat_s,
    )
    if s.worker_id:
        # Static membership: a restarted worker that comes back within the session timeout
        # takes its partitions again without a rebalance (the others keep serving theirs);
        # on stop it does not leave the group, so a worker stopped for good holds its
        # partitions until the session timeout ends (docs/operations.md, Scaling out).
        opts.update(consumer_group_instance_id=s.worker_id)
    return opts


# Faust creates only the last level of its data dir.
Path(settings.data_dir).parent.mkdir(parents=True, exist_ok=True)

class PersonaApp(faust.App):
    """Faust's app, checking the Kafka login once before any client starts: with SASL or TLS
    a wrong password or an untrusted certificate would otherwise leave the worker retrying
    for ever. One line on stderr and exit status 2 instead (within ~30 s)."""

    async def on_first_start(self) -> None:
        auth = settings.kafka_auth
        if auth.protocol != "PLAINTEXT":
            bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.conf.broker)
            problem = await login_problem(bootstrap, auth)
            if problem:
                stop_at_start(problem)
        await super().on_first_start()


app = PersonaApp(
    app_id(settings.shadow),  # "persona", or a shadow app's own id (app.consistency.shadow)
    origin="app",
    autodiscover=["agents", "tables", "web"],
    **faust_options(settings),
)
if app.conf.producer_acks != -1:  # no loss when a broker dies needs acks from all in sync
    print(f"persona: the producer's acks is {app.conf.producer_acks}, not all (-1): a Faust "
          "setting (PRODUCER_ACKS) overrides Persona's", file=sys.stderr, flush=True)
    raise SystemExit(2)
#: Topic settings for every topic Persona creates, changelogs included.
TOPIC_CONFIG = {"min.insync.replicas": settings.min_insync_replicas}
install_kafka_plumbing(app, settings.local_broker_compat,  # version gate + patches
                       settings.allow_untested_versions, settings.fetch_max_wait_ms,
                       settings.fetch_min_bytes, settings.partitions)
failpoints.arm(settings.failpoints)  # crash-safety tests only (PERSONA_FAILPOINT)
metrics_switch.configure(settings.metrics)  # PERSONA_METRICS=off: recording is a no-op


def main() -> None:
    """``persona-worker worker ...``: Faust's command line, on uvloop unless -L is given."""
    if not {"-L", "--loop"} & set(sys.argv):
        sys.argv[1:1] = ["-L", "uvloop"]
    app.main()
