"""The docs stay true to the code (a drift test):

- every setting the code reads is a row of the settings table in ``docs/operations.md``, and
  every row names a setting the code reads;
- every route the app registers is in ``docs/api.md``'s route table, and every row is a route;
- every metric the worker defines is in ``docs/metrics.md``, and every documented one exists;
- every relative link in ``README.md`` and ``docs/`` resolves, down to the heading;
- no tracked file gives an issue or work-session number as a reason (reasons in words;
  upstream bug references such as ``faust-streaming #187`` are sources, and allowed).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from app.observability import metrics
from tests.unit.test_openapi import registered_routes

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = ("app", "agents", "tables", "web")
#: Read from the environment without a PERSONA_/KAFKA_ prefix (``PORT`` is what honcho sets).
UNPREFIXED = {"PORT", "SESSION_IDLE_S"}


def table_rows(page: str, header: str) -> list[list[str]]:
    """The cells of the rows of the first Markdown table under the heading ``header``."""
    text = (ROOT / "docs" / page).read_text()
    section = text[text.index(header):]
    rows, started = [], False
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif started:
            break
    return rows[2:]  # header and rule


def read_variables() -> set[str]:
    names = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'`]((?:PERSONA|KAFKA)_[A-Z0-9_]*[A-Z0-9])[\"'`]",
                                    path.read_text()))
    settings_source = (ROOT / "app" / "settings.py").read_text()
    return names | {n for n in UNPREFIXED if f'"{n}"' in settings_source}


def test_every_setting_read_is_in_the_operations_table_and_back():
    documented = {name for row in table_rows("operations.md", "## Settings")
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row[0])}
    read = read_variables()
    assert len(read) >= 70, sorted(read)
    assert sorted(read - documented) == [], "read by the code, missing in docs/operations.md"
    assert sorted(documented - read) == [], "documented in docs/operations.md, read nowhere"


def test_every_route_is_in_the_api_table_and_back():
    documented = set()
    for row in table_rows("api.md", "## HTTP routes"):
        for method, path in re.findall(r"`([A-Z]+) (/[^`?]*)", row[0]):
            documented.add((re.sub(r"\{\w+\}", "{}", path), method.lower()))
    routes = {(re.sub(r"\{\w+\}", "{}", p), m) for p, m in registered_routes()
              if not p.startswith("/dashboard/")}  # the dashboard's vendored assets: one row
    assert len(routes) >= 15, routes
    assert sorted(routes - documented) == [], "registered, missing in docs/api.md"
    assert sorted(documented - routes) == [], "in docs/api.md, not registered"


def test_every_metric_is_documented_and_back():
    defined = {f.name for f in metrics.REGISTRY.collect() if f.name.startswith("persona_")}
    text = (ROOT / "docs" / "metrics.md").read_text()
    documented = set()
    for name in re.findall(r"`(persona_[a-z_]+)`", text):
        documented.add(re.sub(r"_(total|bucket|count|sum)$", "", name))
    assert len(defined) >= 15, defined
    assert sorted(defined - documented) == [], "defined, missing in docs/metrics.md"
    assert sorted(documented - defined) == [], "in docs/metrics.md, not defined"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    return broken


def test_every_relative_link_resolves():
    found = {str(p.relative_to(ROOT)): broken_links(p) for p in DOCS}
    assert {k: v for k, v in found.items() if v} == {}
    assert sum(len(re.findall(r"\]\((?![a-z]+:)", p.read_text())) for p in DOCS) >= 20


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Real heading\n[a](page.md#real-heading) [b](gone.md) [c](#nowhere)\n")
    assert broken_links(page) == ["gone.md", "#nowhere"]
    assert slug("JWT bearer tokens (OAuth 2.0)") == "jwt-bearer-tokens-oauth-20"


#: A work-log or tracker number given as a reason. ``#N`` is allowed after an upstream
#: project's name (a source), and in "entry #1" / "key #0" / "PKCS#8" (not references).
#: HTML pages are not read: their ``#555`` are colours.
TRACKER = re.compile(
    r"\b(?:issue|work[- ]?log(?: entry)?|work session|session|stop|round)s?\s+#\d+"
    r"|\bissues?\s+\d+\b|\bsessions?[ \t]+\d+\b(?![ \t]*m?s\b)|\bwork[- ]?log\b|\bwork session\b"
    r"|(?<![\w&\"])(?<!entry )(?<!entries )(?<!key )(?<!and )#\d+\b")
UPSTREAM = re.compile(r"(?:faust-streaming|aiokafka|mode-streaming|apache/kafka|KAFKA-)"
                      r"[^()\n]{0,12}#\d+(?:, #\d+)*")


def tracker_refs(text: str) -> list[str]:
    return TRACKER.findall(UPSTREAM.sub("", text))


def test_no_tracked_file_cites_a_tracker_or_session_number():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    skip = ("app/sample_data/", "web/static/vendor/", "bench/results/", "tests/unit/test_docs.py")
    offenders = {}
    for name in files:
        if name.startswith(skip) or not re.search(r"\.(py|md|cfg|toml|js|txt)$|Makefile", name):
            continue
        found = tracker_refs((ROOT / name).read_text(errors="replace"))
        if found:
            offenders[name] = found
    assert offenders == {}


def test_the_tracker_check_can_fail():
    assert tracker_refs("as decided in issue 24") == ["issue 24"]
    assert tracker_refs("see the work log") == ["work log"]
    numbered = "session " + "23"  # built here, so this file holds no such reference itself
    assert tracker_refs(f"as measured in {numbered}") == [numbered]
    assert tracker_refs("a group session 10 s long") == []  # a duration, not a reference
    assert tracker_refs("fixed in #42") == ["#42"]
    assert tracker_refs("faust-streaming #187, #514; entry #1; PKCS#8") == []
