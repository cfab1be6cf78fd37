"""The Quix Streams contender's rows of the benchmark table, and Persona ÷ Quix.

Each Quix run is set against Persona's 1-worker run on the same kind of broker with the
real-Kafka settings (``1w_off`` on the bundled broker, ``1w_kafka`` on Apache Kafka), and on
the bundled broker also against ``1w_on``, the compatibility switch Persona turns on by
itself there (its fetches: 64 KB at least, where the real-Kafka minimum of 1 byte makes the
bundled broker answer with small fetches, ~2 ms of the consumer thread's Python each): the
same events, one process each, both measured from ``/proc``. Returned as row tuples
``(figure, ours, limit, unit, note)`` for ``bench.report``.
"""
from __future__ import annotations

#: (result key of the Quix run, Persona's runs it is set against, where)
PAIRS = (("quix", ("1w_off", "1w_on"), "bundled broker"),
         ("quix_kafka", ("1w_kafka",), "Apache Kafka"))


def rows(res: dict) -> list[tuple]:
    out: list[tuple] = []
    runs = res.get("runs", {})
    for key, ours_keys, where in PAIRS:
        quix = res.get(key)
        if not quix:
            continue
        label = quix["label"]
        out += [
            (f"ingest e2e, {label} (contender)", quix["eps"], None, "events/s",
             "bench/quix/app.py: same rules in one stateful update, RocksDB state + changelog; "
             "stops after the produced count (last checkpoint at once)"),
            (f"worker CPU per event, {label}", quix["worker_cpu_us_per_event"], None, "us",
             f"from its first event; broker {quix['broker_cpu_us_per_event']:,.0f} us/event more"),
            (f"changelog records/event, {label}", quix["changelog_per_event"], None, "records",
             "one record per changed key per checkpoint (Quix's 5 s commit interval)"),
        ]
        for ours_key in ours_keys:
            out += _ratios(runs.get(ours_key), quix, where)
    return out


def _ratios(ours: dict | None, quix: dict, where: str) -> list[tuple]:
    if not ours:
        return []
    if "compat on" in ours["label"]:
        where += ", compat on"
    return [
        (f"Persona ÷ Quix, events/s ({where}, 1 worker)", ours["eps"], quix["eps"],
         "events/s", f"ours: Persona, {ours['label']}; limit column: Quix; >1 = faster"),
        (f"Persona ÷ Quix, worker CPU per event ({where})", ours["worker_cpu_us_per_event"],
         quix["worker_cpu_us_per_event"], "us",
         f"<1 = less CPU than Quix; broker CPU per event: Persona "
         f"{ours['broker_cpu_us_per_event']:,.0f} us, Quix "
         f"{quix['broker_cpu_us_per_event']:,.0f} us"),
    ]
