"""A local Apache Kafka cluster (KRaft, 1 or 3 combined broker+controller nodes) on loopback.

Development and tests only; production points ``KAFKA_BROKER_URL`` at the operator's cluster.
The broker is assembled from Maven Central (no tarball, no container): ``kafka-pom.xml`` pins
one Kafka version; ``libs()`` fetches its runtime classpath once with
``mvn dependency:copy-dependencies`` into ``.kafka/`` (git-ignored, Maven's own repository
there too, so nothing outside the checkout is read or written) and reuses it.

Each start is a new cluster: a fresh cluster id, each node's storage formatted with
``kafka.tools.StorageTool``, then ``kafka.Kafka server.properties`` per node. Ready means a
metadata answer lists every node (``app.harness.ready``), not an open port. The JVMs die with
the Python process that started them (parent-death signal), so no orphan is left behind.
"""
from __future__ import annotations

import base64
import fcntl
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from app.harness.ready import BrokerUnavailable, free_port, in_netns, stop_process, wait_metadata

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POM = HERE / "kafka-pom.xml"
LOG4J = HERE / "kafka-log4j2.properties"
CACHE = ROOT / ".kafka"
VERSION = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text()).group(1)
#: Heap of one local node: enough for the tests and the bench, and 3 nodes fit beside the
#: workers on a 2-core, small machine (a tarball's default is 1 GiB).
JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


def libs() -> Path:
    """The broker's classpath folder, fetched from Maven Central on first use.

    Raises BrokerUnavailable (one line) when Java or Maven is missing or the fetch fails:
    the Kafka tier must fail loudly, never be skipped.
    """
    target = CACHE / f"libs-{VERSION}"
    if (target / ".complete").exists():
        return target
    for tool, package in (("java", "openjdk-17-jre-headless"), ("mvn", "maven")):
        if shutil.which(tool) is None:
            raise BrokerUnavailable(f"the local Kafka broker needs `{tool}` (Debian package "
                                    f"{package}); `make test` installs it when run as root")
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / "fetch.lock", "w") as lock:  # parallel test processes fetch once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        partial = CACHE / f"libs-{VERSION}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        run = subprocess.run(
            ["mvn", "-B", "-q", "-f", str(POM), f"-Dmaven.repo.local={CACHE / 'm2'}",
             "dependency:copy-dependencies", f"-DoutputDirectory={partial}",
             "-DincludeScope=runtime"], capture_output=True, text=True)
        if run.returncode != 0 or not any(partial.glob(f"kafka_2.13-{VERSION}.jar")):
            tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
            raise BrokerUnavailable(f"fetching Kafka {VERSION} from Maven Central failed: "
                                    + " | ".join(tail))
        (partial / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 (22 characters), as
    ``StorageTool random-uuid`` prints (without a leading '-', which a CLI would misread)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def properties(node: int, ports: list[tuple[int, int]], log_dir: Path, host: str,
               overrides: dict | None = None, sasl_ssl: tuple[int, Path] | None = None) -> str:
    """server.properties of node ``node`` (1-based) of a cluster whose (client, controller)
    port pairs are ``ports``: combined broker + controller, PLAINTEXT on loopback; with
    ``sasl_ssl`` = (port, PEM file of key + certificate chain) also a SASL_SSL listener for
    clients (SCRAM-SHA-256/512 users from the metadata log, PLAIN none), as managed clusters
    offer. Brokers and controllers keep talking PLAINTEXT among themselves."""
    n = len(ports)
    client, controller = ports[node - 1]
    voters = ",".join(f"{i}@{host}:{c}" for i, (_, c) in enumerate(ports, 1))
    replicas = min(3, n)
    props = {
        "process.roles": "broker,controller",
        "node.id": node,
        "listeners": f"PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.voters": voters,
        "log.dirs": str(log_dir),
        # Internal topics replicated as far as the cluster allows (3 nodes: 3 copies, 2 in sync).
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,  # 50 by default: slower first group join locally
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min(2, replicas),
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min(2, replicas),
        "default.replication.factor": replicas,
        # The first group join would wait 3 s for more members (Kafka's default).
        "group.initial.rebalance.delay.ms": 0,
        # Persona creates every topic it uses, with its own settings: a topic auto-created by
        # a stray producer (1 partition, default retention) would hide a mistake.
        "auto.create.topics.enable": "false",
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.cleaner.threads": 1,
    }
    if sasl_ssl is not None:
        port, keystore = sasl_ssl
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        props.update({
            "listeners": props["listeners"] + f",SASL_SSL://{host}:{port}",
            "advertised.listeners": props["advertised.listeners"] + f",SASL_SSL://{host}:{port}",
            "listener.security.protocol.map": props["listener.security.protocol.map"]
            + ",SASL_SSL:SASL_SSL",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        })
    props.update(overrides or {})
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class KafkaCluster:
    """``nodes`` KRaft nodes on ``host``; node 1 listens on ``port`` (others on free ports).
    With ``netns`` the JVMs run in that network namespace (``app.harness.hosts``), whose
    address ``host`` must be.

    ``workdir`` holds each node's properties, data and log (``node-<i>.log``); it is
    emptied at start. ``overrides`` are extra broker properties for every node.
    """

    kind = "kafka"

    def __init__(self, port: int, workdir: Path, nodes: int = 1, host: str = "127.0.0.1",
                 overrides: dict | None = None, keystore: Path | None = None,
                 scram_users: tuple = (), netns: str | None = None):
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        self.host, self.workdir, self.overrides = host, Path(workdir), dict(overrides or {})
        self.netns = netns
        self.ports = [(port, free_port())] + [(free_port(), free_port()) for _ in range(nodes - 1)]
        self.procs: list[subprocess.Popen | None] = [None] * nodes
        #: With ``keystore`` (PEM: key + certificate chain) a SASL_SSL listener per node, and
        #: ``scram_users`` = ((mechanism, name, password), ...) created at format time.
        self.keystore, self.scram_users = keystore, tuple(scram_users)
        self.sasl_ports = [free_port() for _ in range(nodes)] if keystore else []

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listeners (with a keystore)."""
        return ",".join(f"{self.host}:{p}" for p in self.sasl_ports)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{p}" for p, _ in self.ports)

    def _java(self, main: str, *args: str, heap: bool = False) -> list[str]:
        return in_netns(self.netns, [
            "java", *(JVM_OPTS if heap else ("-Xmx256m",)),
            f"-Dlog4j2.configurationFile={LOG4J}", "-cp", f"{libs()}/*", main, *args])

    def start(self, timeout: float = 90.0) -> "KafkaCluster":
        if shutil.which("java") is None:
            raise BrokerUnavailable("the local Kafka broker needs `java` (Debian package "
                                    "openjdk-17-jre-headless); `make test` installs it as root")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        cid = cluster_id()
        formats = []
        for i in range(1, len(self.ports) + 1):
            conf = self.workdir / f"node-{i}.properties"
            sasl = (self.sasl_ports[i - 1], self.keystore) if self.keystore else None
            conf.write_text(properties(i, self.ports, self.workdir / f"data-{i}", self.host,
                                       self.overrides, sasl))
            users = [a for mech, name, pw in self.scram_users
                     for a in ("--add-scram", f"{mech}=[name={name},password={pw}]")]
            formats.append(subprocess.Popen(
                self._java("kafka.tools.StorageTool", "format", "-t", cid, "-c", str(conf),
                           *users),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for proc in formats:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise BrokerUnavailable(f"kafka StorageTool format failed: {out.strip()[-300:]}")
        for i in range(1, len(self.ports) + 1):
            self.start_node(i)
        try:
            wait_metadata(self.bootstrap, len(self.ports), timeout, self._exited)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node: int) -> None:
        """(Re)start node ``node`` (1-based) on its existing storage."""
        log = open(self.workdir / f"node-{node}.log", "ab")
        self.procs[node - 1] = subprocess.Popen(
            self._java("kafka.Kafka", str(self.workdir / f"node-{node}.properties"), heap=True),
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            start_new_session=True)  # Ctrl-C at a terminal goes to Persona, which stops it

    def _exited(self) -> str | None:
        for i, proc in enumerate(self.procs, 1):
            if proc is not None and proc.poll() is not None:
                log = self.workdir / f"node-{i}.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
                return f"kafka node {i} exited with {proc.returncode}: " + " | ".join(tail)
        return None

    def stop_node(self, node: int, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        stop_process(self.procs[node - 1], sig, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to every node at once (a controlled shutdown), SIGKILL past ``timeout``."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for i in range(1, len(self.procs) + 1):
            self.stop_node(i, timeout=timeout)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in self.procs)

    def wait(self) -> int:
        """Block until any node exits; its exit status. Polls: a signal handler that stops
        the cluster must not find a ``Popen.wait`` of ours in progress (it holds a lock)."""
        while True:
            for proc in self.procs:
                if proc is not None and proc.poll() is not None:
                    return proc.returncode
            time.sleep(0.2)


def main_env_hint(bootstrap: str) -> str:
    """The worker environment that points at this cluster."""
    urls = ";".join(bootstrap.split(","))
    return f"KAFKA_BROKER_URL=kafka://{urls}"


def main() -> None:
    """``python -m app.harness.kafka``: fetch the broker's classpath now (``make test`` does,
    before the tests run in parallel); one line and exit status 1 if it cannot be had."""
    try:
        folder = libs()
    except BrokerUnavailable as exc:
        raise SystemExit(f"local Kafka: {exc}") from None
    print(f"local Kafka {VERSION}: {len(list(folder.glob('*.jar')))} jars in "
          f"{folder.relative_to(ROOT)}")


if __name__ == "__main__":  # pragma: no cover
    main()
