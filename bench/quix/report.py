"""The Quix Streams contender's rows of the benchmark table, and Persona ÷ Quix.

Each Quix run is set against Persona's 1-worker run on the same kind of broker with the
real-Kafka settings (``1w_off`` on the bundled broker, ``1w_kafka`` on Apache Kafka): the
same events, one process each, both measured from ``/proc``. Returned as row tuples
``(figure, ours, limit, unit, note)`` for ``bench.report``.
"""
from __future__ import annotations

#: (result key of the Quix run, Persona's run it is set against, where)
PAIRS = (("quix", "1w_off", "bundled broker"), ("quix_kafka", "1w_kafka", "Apache Kafka"))


def rows(res: dict) -> list[tuple]:
    out: list[tuple] = []
    runs = res.get("runs", {})
    for key, ours_key, where in PAIRS:
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
        ours = runs.get(ours_key)
        if not ours:
            continue
        out += [
            (f"Persona ÷ Quix, events/s ({where}, 1 worker)", ours["eps"], quix["eps"],
             "events/s", f"ours: Persona, {ours['label']}; limit column: Quix; >1 = faster"),
            (f"Persona ÷ Quix, worker CPU per event ({where})", ours["worker_cpu_us_per_event"],
             quix["worker_cpu_us_per_event"], "us",
             f"<1 = less CPU than Quix; broker CPU per event: Persona "
             f"{ours['broker_cpu_us_per_event']:,.0f} us, Quix "
             f"{quix['broker_cpu_us_per_event']:,.0f} us"),
        ]
    return out
