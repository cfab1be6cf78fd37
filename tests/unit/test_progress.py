"""Progress bars of the long command-line tools: drawn with a count and a rate on a terminal,
nothing at all on a pipe or a file."""
from __future__ import annotations

import io
import os
import re
import select

from app.cli import progress
from tests.support.terminal import open_terminal


def read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_a_terminal_gets_a_count_and_a_rate():
    master, slave = open_terminal()
    try:
        with os.fdopen(slave, "w", closefd=False) as term:
            assert progress.on_terminal(term)
            with progress.bar("replay", 3, unit=" events", stream=term) as bar:
                bar.update(3)
        text = read_all(master)
    finally:
        os.close(slave)
        os.close(master)
    assert "replay" in text and "100%" in text and "3.00/3.00" in text, text
    assert re.search(r"[0-9.]+k? events/s\]", text), text


def test_a_pipe_gets_nothing():
    out = io.StringIO()
    assert not progress.on_terminal(out)
    with progress.bar("replay", 3, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_nothing_when_the_tool_does_not_ask():
    master, slave = open_terminal()
    try:
        with os.fdopen(slave, "w", closefd=False) as term:
            with progress.bar("replay", 3, stream=term, enabled=False) as bar:
                bar.update(3)
        os.write(slave, b"end")
        assert read_all(master) == "end"
    finally:
        os.close(slave)
        os.close(master)


def test_lines_are_counted_for_the_total(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 250_000)
    assert progress.count_lines(path, chunk=4096) == 250_000
