"""The shipped Grafana dashboard (``app/observability/grafana/persona.json``) is valid JSON, has the
panels the README promises, and queries only metrics ``app.observability.metrics`` defines."""
from __future__ import annotations

import json
import re
from pathlib import Path

from app.observability import metrics

DASHBOARD = Path(metrics.__file__).parent / "grafana" / "persona.json"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")


def defined_names() -> set:
    return {f.name + s for f in metrics.REGISTRY.collect() for s in SUFFIXES}


def test_dashboard_queries_only_defined_metrics():
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:persona|process)_[a-z_]+\b", e)}
    assert used and used <= defined_names(), used - defined_names()
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)


def test_dashboard_has_the_promised_panels():
    dash = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"] for p in dash["panels"]).lower()
    for word in ("events/s", "freshness p50 / p99", "consumer lag", "webhook outcomes",
                 "http latency", "batch", "changelog", "ready"):
        assert word in titles, word
    exprs = json.dumps(dash)
    assert "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs
