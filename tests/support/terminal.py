"""Run a command with its stderr on a pseudo-terminal, as an operator at a shell would, to
see what it draws there (progress bars); stdout stays a pipe."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading


def open_terminal(rows: int = 24, cols: int = 120) -> tuple[int, int]:
    """(master, slave) of a new pseudo-terminal with a window size, as a shell's has (a
    fresh one reports 0 columns, into which a progress bar draws nothing)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def run_on_terminal(cmd: list[str], env: dict, cwd, timeout: float = 180.0,
                    stdin: bytes | None = None) -> tuple[int, str, str]:
    """(exit status, stdout, everything written to the terminal)."""
    master, slave = open_terminal()
    seen: list[bytes] = []

    def drain():  # a terminal's buffer is small: read while it runs, or the writer blocks
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the last writer closed the terminal
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(cmd, env=env, cwd=cwd, stderr=slave, stdout=subprocess.PIPE,
                              input=stdin, timeout=timeout)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    return done.returncode, done.stdout.decode(), b"".join(seen).decode(errors="replace")
