"""What both local brokers share (and the worker harness): free ports, stopping a process,
running one in a network namespace, the one error a broker that cannot be had
raises, and readiness as a metadata round trip (an open port is not a ready broker: Kafka
listens before its node has registered with the controller)."""
from __future__ import annotations

import asyncio
import logging
import random
import signal
import socket
import subprocess
import time
from typing import Callable


class BrokerUnavailable(RuntimeError):
    """A local broker cannot be had here (no Java/Maven, a failed fetch, a node that exited)."""


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 timeout: float = 30.0) -> None:
    """Signal a process and wait for it; kill -9 if it outlives ``timeout``."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    """``argv`` run in network namespace ``netns`` (``app.harness.hosts``), or as it is.
    ``ip netns exec`` execs the command, so the process started is the command itself."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


# Below Linux's ephemeral range (32768-60999 by default). A port the kernel handed out for a
# bind to 0 is one it hands out again for outgoing connections: between this check and the
# process that binds it seconds later, a Kafka client's connection could take it. Ports here
# are only ever taken by an explicit bind.
PORTS = range(20000, 32768)
_given: set[int] = set()


def free_port() -> int:
    """A port no socket holds now, outside the ephemeral range, never given twice by one
    process (two starts in a row must not be handed the same port before either binds)."""
    for _ in range(200):
        port = random.choice(PORTS)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} after 200 tries")


async def _brokers(bootstrap: str) -> int:
    """How many brokers one metadata answer lists (raises if there is no answer)."""
    from aiokafka.client import AIOKafkaClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "Unable connect" while starting
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                            metadata_max_age_ms=1000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return len(metadata.brokers())
    finally:
        await client.close()
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def wait_metadata(bootstrap: str, nodes: int, timeout: float,
                  exited: Callable[[], str | None] = lambda: None) -> float:
    """Block until a metadata answer from ``bootstrap`` lists ``nodes`` brokers; seconds taken.

    Raises BrokerUnavailable at once if ``exited()`` reports a dead process, and after
    ``timeout`` otherwise."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        dead = exited()
        if dead:
            raise BrokerUnavailable(dead)
        try:
            seen = asyncio.run(_brokers(bootstrap))
            if seen >= nodes:
                return time.monotonic() - started
            last = f"{seen} of {nodes} brokers registered"
        except Exception as exc:  # not listening yet, or no answer yet
            last = exc
        time.sleep(0.2)
    raise BrokerUnavailable(f"no metadata answer listing {nodes} broker(s) from {bootstrap} "
                            f"within {timeout:.0f}s (last: {last!r})")
