"""Progress and rate of the long command-line tools (``persona-replay`` of a large file,
``persona-reconcile``, ``persona-shadow``), drawn by tqdm on stderr when stderr is a
terminal, and nothing at all otherwise: a pipe, a log file or CI sees only the tools' own
result lines, so scripts that parse them keep working."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def bar(desc: str, total: int | None = None, unit: str = " records", enabled: bool = True,
        stream=None) -> tqdm:
    """A progress bar (count, rate, and with a ``total`` the share done and the time left);
    a no-op object unless ``enabled`` and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=stream,
                disable=not (enabled and on_terminal(stream)), mininterval=0.2,
                dynamic_ncols=True, leave=True)


def count_lines(path: str | Path, chunk: int = 1 << 20) -> int:
    """Lines of a file (what a replay of it will send at most), read in 1 MiB chunks."""
    n = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            n += block.count(b"\n")
    return n
