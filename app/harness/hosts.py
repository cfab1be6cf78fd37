"""Several "hosts" on one machine: a network namespace per host, each with its own address
on one bridge (development and tests only; needs root and iproute2, iptables for ``cut``).

So far every local worker shared one loopback address; real deployments fail differently.
Here each host has its own network stack: a worker binds and advertises its host's address,
a Kafka node listens on its own, and a host can lose its network while its processes run:

- ``Hosts(["kafka", "w1", ...])``: namespaces ``psn<pid>-<name>``, each linked by a veth
  pair (``eth0`` inside) to a bridge in the starting namespace, addresses ``10.231.<n>.10+``
  on a /24 no address here uses yet; the starting process (the test, a load balancer) is
  ``.1`` on the bridge and reaches every host, and traffic stays on that subnet;
- ``cmd(host, argv)``: the command line that runs ``argv`` on that host (``ip netns exec``);
- ``cut(host)`` / ``heal(host)``: drop every packet between the host and the others, but not
  the starting process's (a host cut off from the cluster that clients still reach: the
  zombie owner's case); ``slow(host, delay_ms, loss)`` / ``fast(host)``: ``tc netem`` on
  the host's link, or where the kernel has no netem the same delay and loss in user space
  (``app.harness.nfdelay``); ``slow`` says which;
- ``close()`` (also on leaving ``with``): stops what still runs in the namespaces (SIGKILL),
  deletes them (their veth pairs go with them) and the bridge. ``leftovers(tag)`` lists what
  a run left, and ``Hosts`` first removes what runs whose process is gone left behind.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

PREFIX = "psn"


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be had here (not root, no iproute2, no netns support)."""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {run.stderr.strip() or run.stdout.strip()}")
    return run


def require() -> None:
    """Raise NetnsUnavailable (one line) unless namespaces, veth pairs and bridges work."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("the multi-host tests need root (network namespaces)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise NetnsUnavailable(f"the multi-host tests need `{tool}` (apt-get install "
                                   f"{'iproute2' if tool == 'ip' else 'iptables'})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(tag: str = PREFIX) -> list[str]:
    """Namespaces and links whose name starts with ``tag``."""
    names = sh("ip", "netns", "list").stdout.split()
    links = re.findall(r"^\d+: ([^:@]+)", sh("ip", "-o", "link", "show").stdout, re.M)
    return [n for n in names + links if n.startswith(tag)]


def sweep() -> None:
    """Remove namespaces and bridges of earlier runs whose process is gone."""
    for name in leftovers():
        match = re.match(rf"{PREFIX}(\d+)", name)
        if match and not _alive(int(match.group(1))):
            _delete(name)


def _delete(name: str) -> None:
    if name in sh("ip", "netns", "list").stdout.split():
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", name, check=False)
    else:
        sh("ip", "link", "del", name, check=False)


def free_subnet() -> str:
    """``10.231.<n>`` with no address or route of this machine in it."""
    used = sh("ip", "-4", "-o", "addr").stdout + sh("ip", "-4", "route").stdout
    start = os.getpid() % 200
    for i in range(254):
        n = (start + i) % 254 + 1
        if f"10.231.{n}." not in used:
            return f"10.231.{n}"
    raise NetnsUnavailable("no free 10.231.<n>.0/24 subnet for the test hosts")


@dataclass
class Host:
    name: str
    netns: str
    addr: str
    link: str  # the veth end on the bridge side


class Hosts:
    def __init__(self, names: list[str]):
        require()
        sweep()
        self.tag = f"{PREFIX}{os.getpid()}"
        self.subnet = free_subnet()
        self.client = f"{self.subnet}.1"
        self.bridge = f"{self.tag}br"
        self.hosts = {name: Host(name, f"{self.tag}-{name}", f"{self.subnet}.{10 + i}",
                                 f"{self.tag}v{i}") for i, name in enumerate(names)}
        self.delayers: dict[str, subprocess.Popen] = {}
        self.is_up = False

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def up(self) -> "Hosts":
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{self.client}/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for h in self.hosts.values():
                sh("ip", "netns", "add", h.netns)
                sh("ip", "link", "add", h.link, "type", "veth", "peer", "name", "eth0",
                   "netns", h.netns)
                sh("ip", "link", "set", h.link, "master", self.bridge, "up")
                sh("ip", "-n", h.netns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
                sh("ip", "-n", h.netns, "link", "set", "eth0", "up")
                sh("ip", "-n", h.netns, "link", "set", "lo", "up")
            self.is_up = True
        except (RuntimeError, OSError) as exc:
            self.close()
            raise NetnsUnavailable(f"network namespaces do not work here: {exc}") from None
        return self

    def __enter__(self) -> "Hosts":
        return self if self.is_up else self.up()

    def __exit__(self, *exc) -> None:
        self.close()

    def cmd(self, name: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name].netns, *argv]

    def _iptables(self, name: str, *rule: str, check: bool = True) -> None:
        sh(*self.cmd(name, ["iptables", "-w", *rule]), check=check)

    def _cut_rules(self) -> list[tuple[str, ...]]:
        return [("INPUT", "-i", "eth0", "!", "-s", self.client, "-j", "DROP"),
                ("OUTPUT", "-o", "eth0", "!", "-d", self.client, "-j", "DROP")]

    def cut(self, name: str) -> None:
        """The host loses the cluster: brokers and other hosts; the starting process still
        reaches it (and it answers)."""
        for chain, *rule in self._cut_rules():
            self._iptables(name, "-I", chain, *rule)

    def heal(self, name: str) -> None:
        for chain, *rule in self._cut_rules():
            self._iptables(name, "-D", chain, *rule)

    def slow(self, name: str, delay_ms: int, loss_pct: float) -> str:
        """Delay and drop the host's outgoing packets; 'tc netem' or 'nfqueue' (how)."""
        netem = sh(*self.cmd(name, ["tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                                    "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]),
                   check=False)
        if netem.returncode == 0:
            return "tc netem"
        proc = subprocess.Popen(
            self.cmd(name, [sys.executable, "-m", "app.harness.nfdelay", "--queue", "7",
                            "--delay-ms", str(delay_ms), "--loss", str(loss_pct / 100)]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.delayers[name] = proc
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            raise NetnsUnavailable(f"no netem and no packet queue here: {line}")
        self._iptables(name, "-A", "OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "7",
                       "--queue-bypass")
        return "nfqueue"

    def fast(self, name: str, delay_ms: int = 100) -> None:
        proc = self.delayers.pop(name, None)
        if proc is None:
            sh(*self.cmd(name, ["tc", "qdisc", "del", "dev", "eth0", "root"]), check=False)
            return
        self._iptables(name, "-D", "OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num",
                       "7", "--queue-bypass", check=False)
        time.sleep(2 * delay_ms / 1000)  # let the queued packets out
        proc.kill()
        proc.wait(10)

    def close(self) -> None:
        for proc in self.delayers.values():
            proc.kill()
            proc.wait(10)
        self.delayers.clear()
        for h in self.hosts.values():
            _delete(h.link)  # both ends at once (a namespace's own go asynchronously)
            _delete(h.netns)
        _delete(self.bridge)
        self.is_up = False
