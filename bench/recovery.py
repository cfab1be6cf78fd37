"""Recovery: stop the 1-worker (compat on) worker, wipe its data dir, start it again.

Figures (``recovery`` in the JSON, rows in ``bench/report.py``):

- ``ready_s``: start to the first ``/ready`` 200; ``assigned_s``: start to the group join
  (Faust's "Setting newly assigned partitions": waiting out the stopped member);
  ``ready_after_join_s``: group join to ``/ready`` (target: <= 15 s).
- ``restore_s`` / ``records`` / ``records_per_s``: from the ``bulk restore: N changelog
  records in Xs`` line(s) of ``app/kafka/restore.py``. Without such a line (an
  ``--app-root`` checkout from before the bulk restore) the window is Faust's marks
  ("Restoring state from changelog topics" .. "Done reading from changelog topics") and
  the records are all the changelogs' records; ``restore_source`` says which.
- ``answers_s``: start until 50 sampled customers answer 200; worker and broker CPU.
"""
from __future__ import annotations

import signal
import time

from bench import load, logparse
from bench.procs import API_KEY, Broker, Worker, cpu_seconds, get
from bench.scenarios import Ctx, _spy


def figures(text: str, started: float, ready: float, changelog_records: int) -> dict:
    """The restore and join figures of one recovery's worker log ``text`` (pure)."""
    win = logparse.restore_window(text, started, ready)
    assigned = logparse.marks(text, logparse.ASSIGNED).get(logparse.ASSIGNED, started)
    records = win["records"] if win["records"] is not None else changelog_records
    restore_s = win["restore_s"]
    return {"ready_s": ready - started, "assigned_s": assigned - started,
            "ready_after_join_s": ready - assigned, "restore_s": restore_s,
            "records": records, "records_per_s": records / max(restore_s, 1e-3),
            "restore_source": win["source"], "restore_runs": win["runs"],
            "restore_interrupted": win["interrupted"]}


def recovery(ctx: Ctx):
    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        w = ws[0]
        sample = ctx.ids[:50]
        w.stop()
        w.wipe()
        since = w.log_size()
        broker_cpu0 = cpu_seconds(b.pid)
        w.start()
        spy = _spy(w.pid, ctx.profile.with_name(ctx.profile.stem + "-recovery.txt")) \
            if ctx.profile else None
        ready = w.wait_ready(timeout=900)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        cpu = {"worker_cpu_s": cpu_seconds(w.pid),
               "broker_cpu_s": cpu_seconds(b.pid) - broker_cpu0}
        pending = set(sample)
        while pending and time.time() - ready < 120:
            pending = {i for i in pending if get(f"{w.url}{load.PATH.format(i)}", API_KEY) != 200}
        answers = time.time()
        r = figures(w.log_text(since), w.started, ready, done["changelog_records"])
        r.update({"answers_s": answers - w.started, "unanswered": len(pending),
                  "changelog_records": done["changelog_records"],
                  "empty_start_s": done["ready_s"], **cpu})
        ctx.log(f"  recovery: ready in {r['ready_s']:.1f}s (group join {r['assigned_s']:.1f}s, "
                f"then {r['ready_after_join_s']:.1f}s to /ready; restore {r['restore_s']:.1f}s: "
                f"{r['records']:,} records, {r['records_per_s']:,.0f}/s from the "
                f"{r['restore_source']}; CPU worker {cpu['worker_cpu_s']:.0f}s, broker "
                f"{cpu['broker_cpu_s']:.0f}s)")
        return {"recovery": r}
    return run
