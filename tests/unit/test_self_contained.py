"""The checkout carries everything its commands and tests need.

Two checks, both able to fail: no tracked file names a path that leaves the repository, and a
copy of just the tracked files, in an empty directory with nothing beside it, converts the
bundled OTTO sample (what ``make run`` replays and the e2e tests use).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ../shared, parents[2+] / "shared", or an absolute path into the build machine's workspace.
OUTSIDE = re.compile(r"\.\./shared|parents\[[2-9]\]\s*/\s*[\"']shared|[\"']/work/")


def tracked_files() -> list[str]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.fail("the self-containment check needs a git checkout and git")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_tracked_source_reads_outside_the_checkout():
    offenders = []
    for rel in tracked_files():
        if rel == "tests/unit/test_self_contained.py" or not rel.endswith(
                (".py", ".cfg", ".toml", ".js", ".html", "Makefile", "Procfile", "run")):
            continue
        for n, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "paths outside the checkout:\n" + "\n".join(offenders)


def test_a_copy_of_the_tracked_files_alone_converts_the_bundled_sample(tmp_path):
    lonely = tmp_path / "nothing-beside-me" / "persona"
    for rel in tracked_files():
        src = ROOT / rel
        if src.is_file():
            (lonely / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, lonely / rel)
    code = ("import sys; from app.cli import otto; "
            "assert str(otto.SAMPLE).startswith(sys.argv[1]), otto.SAMPLE; "
            "events = otto.load_sample(); print(len(events), len({e['customer_id'] for e in events}))")
    env = {**os.environ, "PYTHONPATH": str(lonely)}
    run = subprocess.run([sys.executable, "-c", code, str(lonely)], cwd=lonely, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    n_events, n_customers = map(int, run.stdout.split())
    # 862 raw rows (800 clicks, 52 carts, 10 orders); orders sharing a timestamp fold into one
    # purchase, so the converted count is a little below 862 and covers all 20 shoppers.
    assert 852 <= n_events <= 862 and n_customers == 20
    assert (lonely / "app" / "sample_data" / "README.md").read_text().count("CC-BY 4.0") >= 1
