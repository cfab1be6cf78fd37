"""Summaries of py-spy ``--format raw`` profiles (collapsed stacks, one per line).

``python -m bench.profile FILE [N]`` prints the top self-time and inclusive functions
and a grouping of the samples by layer (ours / faust / aiokafka / rocksdb / ...).
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)")
#: Inclusive buckets, first match wins, checked from the innermost frame outwards.
LAYERS = (
    ("metrics (prometheus_client, app/observability/metrics.py)", ("app/observability/metrics.py", "prometheus_client/")),
    ("app state rules (apply)", ("app/rules/session_state.py", "app/rules/profile_state.py",
                                 "app/rules/dedupe.py", "app/rules/kpis.py")),
    ("event parse + validate", ("app/rules/events.py", "app/rules/fastcheck.py")),
    ("table get/set (faust + rocksdb + json codec)", ("faust/stores/", "faust/tables/",
                                                       "faust/serializers/", "utils/json.py")),
    ("producer send (changelog) aiokafka+faust", ("aiokafka/producer/", "faust/transport/producer",
                                                  "faust/topics.py")),
    ("consumer fetch + faust stream machinery", ("aiokafka/consumer/", "faust/transport/",
                                                "faust/streams.py", "faust/channels.py",
                                                "faust/agents/")),
    ("logging", ("logging/__init__.py",)),
    ("web (aiohttp)", ("aiohttp/", "faust/web/")),
)


def _frames(stack: str) -> list[str]:
    return [_LINE.sub(")", f) for f in stack.split(";")]


def summary(path: Path, top: int = 25) -> dict:
    self_c: Counter = Counter()
    incl: Counter = Counter()
    layers: Counter = Counter()
    threads: Counter = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = _frames(stack)
        if frames[0].startswith("thread ("):  # py-spy --threads: the root frame names it
            name = frames.pop(0).split(": ", 1)[-1]
            threads["main loop" if name == "MainThread" else f"thread {name}"] += count
        if not frames:
            continue
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
        layers[_layer(frames)] += count

    def pct(c: Counter) -> list:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]

    return {"samples": total, "threads": pct(threads), "self": pct(self_c),
            "inclusive": pct(incl), "layers": pct(layers)}


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in LAYERS:
            if any(n in frame for n in needles):
                return name
    if frames and "select" in frames[-1].lower():
        return "event loop poll (select)"
    return "other (event loop, asyncio, misc)"


if __name__ == "__main__":
    s = summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25)
    print(f"{s['samples']} samples")
    for title in ("threads", "layers", "self", "inclusive"):
        print(f"--- {title}")
        for name, p in s[title]:
            print(f"{p:5.1f}%  {name}")
