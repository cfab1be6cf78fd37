"""What both local brokers share (and the worker harness): free ports, stopping a process,
running one in a network namespace, the one error a broker that cannot be had
raises, and readiness as a metadata round trip (an open port is not a ready broker: Kafka
listens before its node has registered with the controller)."""
from __future__ import annotations

import asyncio
import logging
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
