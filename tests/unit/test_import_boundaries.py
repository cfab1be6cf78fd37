"""Import boundaries: the pure rules (``app.rules``) import nothing of Faust, aiohttp,
settings or the clock, and the Python client nothing of the server side.

Enforced two ways: every module of ``app.rules`` is imported in a fresh interpreter in
which importing faust, mode, aiokafka, aiohttp, app.settings, app.main (and the rest of
``app`` outside ``app.rules``) fails; and no rule module reads the clock (time is passed in).
"""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import app.rules

RULES = Path(app.rules.__file__).parent
BLOCKED = ("faust", "mode", "aiokafka", "aiohttp", "rocksdict", "app.settings", "app.main",
           "app.topics", "app.kafka", "app.webhooks", "app.cli", "app.client", "agents",
           "tables", "web")
CLOCK_CALLS = {("time", "time"), ("time", "time_ns"), ("time", "monotonic"),
               ("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("pure rules may not import " + name)
sys.meta_path.insert(0, Block())
import importlib
for name in {modules!r}:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
assert not leaked, leaked
print("ok", len({modules!r}))
"""


def rule_modules() -> list[str]:
    return [f"app.rules.{m.name}" for m in pkgutil.iter_modules([str(RULES)])]


def test_rules_import_with_faust_aiohttp_and_settings_blocked():
    modules = rule_modules()
    assert {"app.rules.events", "app.rules.session_state", "app.rules.profile_state",
            "app.rules.recommend", "app.rules.triggers"} <= set(modules)
    code = BLOCKER.format(blocked=BLOCKED, modules=modules)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=RULES.parents[1], timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ok", str(len(modules))]


def test_the_blocker_does_catch_a_forbidden_import():
    """The check above can fail: a module that imports app.settings is refused."""
    code = BLOCKER.format(blocked=BLOCKED, modules=["app.settings"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=RULES.parents[1], timeout=60)
    assert run.returncode != 0 and "pure rules may not import app.settings" in run.stderr


def clock_reads(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in CLOCK_CALLS:
                found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


def test_no_rule_reads_the_clock():
    offenders = {p.name: clock_reads(p.read_text()) for p in RULES.glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert clock_reads("import time\nnow = time.time()\n") == ["time.time (line 2)"]


def test_the_python_client_imports_nothing_of_the_server_side():
    """``app.client`` ships to shops' backends: no Faust, settings, rules, tables or views."""
    server = ("faust", "mode", "aiokafka", "rocksdict", "marshmallow", "app.settings",
              "app.main", "app.topics", "app.kafka", "app.webhooks", "app.cli", "app.rules",
              "agents", "tables", "web")
    code = BLOCKER.format(blocked=server, modules=["app.client"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=RULES.parents[1], timeout=60)
    assert run.returncode == 0, run.stderr


def private_uses(path: Path) -> list[str]:
    """Private names of Faust/aiokafka/mode imported, or ``obj._name`` read (not self/cls)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.ImportFrom) and node.module
                and node.module.split(".")[0] in ("faust", "aiokafka", "mode")):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{node.attr} (line {node.lineno})")
    return found


def test_private_faust_and_aiokafka_names_are_used_only_in_app_kafka():
    root = RULES.parents[1]
    offenders = {}
    for package in ("app", "agents", "tables", "web"):
        for path in (root / package).rglob("*.py"):
            if path.relative_to(root).parts[:2] != ("app", "kafka") and private_uses(path):
                offenders[str(path.relative_to(root))] = private_uses(path)
    assert not offenders, offenders
    assert private_uses(root / "app" / "kafka" / "internals.py")  # the check can see them


APP = RULES.parent
#: ``app/``'s top level: rooms (packages) and the three modules everything starts from.
ROOMS = {"auth", "cli", "client", "config", "consistency", "harness", "kafka",
         "observability", "rules", "sample_data", "webhooks"}
TOP_MODULES = {"__init__.py", "main.py", "settings.py", "topics.py"}
#: Rooms the agents, tables and views stand on: they import none of those, nor the app.
FOUNDATION = ("auth", "config", "consistency", "observability")


def test_app_top_level_shows_its_rooms():
    entries = {p.name for p in APP.iterdir() if p.name != "__pycache__"}
    assert entries == ROOMS | TOP_MODULES, sorted(entries ^ (ROOMS | TOP_MODULES))
    undocumented = [room for room in ROOMS - {"sample_data"}
                    if not ast.get_docstring(ast.parse((APP / room / "__init__.py").read_text()))]
    assert not undocumented, undocumented


def test_the_foundation_rooms_import_no_agent_table_view_or_app():
    modules = [f"app.{room}.{m.name}" for room in FOUNDATION
               for m in pkgutil.iter_modules([str(APP / room)])]
    assert len(modules) >= 14, modules
    code = BLOCKER.format(blocked=("agents", "tables", "web", "app.main", "app.cli",
                                   "app.harness"), modules=modules)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=APP.parent, timeout=60)
    assert run.returncode == 0, run.stderr
