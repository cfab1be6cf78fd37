"""Restart and failover of one of two workers, after a 2-worker ingest (``restart`` in the
JSON, rows in ``bench/report.py``; ``--skip restart`` leaves it out). On the bundled broker
it follows the compat-on run: without the switch's true end offsets a worker restarted with
its data finds its RocksDB ahead of the changelog's reported end, and Faust stops it.

The ingest's workers stop; two new ones start on the same broker as a production pair
would run: each with its own ``PERSONA_WORKER_ID`` (static membership; on Apache Kafka
only) and
``PERSONA_STANDBY_REPLICAS=1`` (each keeps a standby copy of the other's tables). Once both
are ready, a prober reads a sample of customers through worker 1 the whole time (reads of
worker 2's customers are forwarded to it), and:

- ``restart``: worker 2 is stopped and started again with its data dir. Figures: stop to
  ``/ready`` and start to ``/ready`` of worker 2; whether worker 1 went through a rebalance
  (its ``/ready`` answered 503: it must not with static membership); the longest window in
  which any sampled read did not answer 200 and how many reads did not.
- ``failover``: worker 2 is killed (``kill -9``). Figure: kill until every sampled customer
  answers 200 through worker 1 alone, against the bound of the group session timeout + 2 s
  (a killed static member is noticed when its session ends; the standby copies make the
  takeover a promotion, not a restore).
"""
from __future__ import annotations

import threading
import time

from bench import load
from bench.procs import API_KEY, Broker, Worker, get
from bench.scenarios import Ctx

SESSION_TIMEOUT_S = 10.0  # PERSONA_GROUP_SESSION_TIMEOUT_S's default, which the bench keeps
SAMPLE = 100


class Prober(threading.Thread):
    """Reads the sample round-robin through one worker; every answer's time and status."""

    def __init__(self, url: str, ids: list, ready_url: str):
        super().__init__(daemon=True)
        self.url, self.ids, self.ready_url = url, ids, ready_url
        self.answers: list[tuple[float, int]] = []
        self.ready: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            cid = self.ids[n % len(self.ids)]
            self.answers.append((time.time(), get(f"{self.url}{load.PATH.format(cid)}", API_KEY,
                                                  timeout=2)))
            if n % 10 == 0:
                self.ready.append((time.time(), get(self.ready_url, timeout=2)))
            n += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(10)

    def window(self, since: float) -> dict:
        """Reads since ``since`` that did not answer 200, and the longest span of them."""
        seen = [(t, s) for t, s in self.answers if t >= since]
        bad = [t for t, s in seen if s != 200]
        longest, start, last = 0.0, None, None
        for t, s in seen:
            if s != 200:
                start = t if start is None else start
                last = t
            elif start is not None:
                longest, start = max(longest, t - start), None
        if start is not None:
            longest = max(longest, last - start)
        return {"reads": len(seen), "not_200": len(bad), "longest_not_200_s": longest}

    def rebalanced(self, since: float) -> bool:
        return any(s != 200 for t, s in self.ready if t >= since)


def all_answer(url: str, ids: list, timeout: float) -> float | None:
    """Wall time when every id answered 200 once through ``url`` (None: not in time)."""
    deadline, pending = time.time() + timeout, set(ids)
    while pending and time.time() < deadline:
        pending = {i for i in pending if get(f"{url}{load.PATH.format(i)}", API_KEY, timeout=2)
                   != 200}
        if pending:
            time.sleep(0.05)
    return None if pending else time.time()


def restarts(ctx: Ctx, compat: bool, static: bool):
    """``static``: the pair runs with worker ids (Apache Kafka); the bundled broker does not
    keep static members (its group re-joins for ever), so there the pair runs without."""
    def run(b: Broker, ws: list[Worker], done: dict) -> dict:
        for w in ws:
            w.stop()
        pair = [Worker(b, ctx.tmp, compat, ctx.partitions,
                       {**ctx.worker_env, "PERSONA_STANDBY_REPLICAS": "1",
                        **({"PERSONA_WORKER_ID": f"bench-{n}"} if static else {})},
                       ctx.app_root).start()
                for n in (1, 2)]
        try:
            for w in pair:
                w.wait_ready(timeout=900)
            one, two = pair
            ids = ctx.ids[:SAMPLE]
            if all_answer(one.url, ids, 120) is None:
                return {"restart": {"error": "the pair never answered every sampled customer"}}
            probe = Prober(one.url, ids, f"{one.url}/ready")
            probe.start()
            time.sleep(1.0)
            stopped = time.time()
            two.stop()
            two.start()
            ready = two.wait_ready(timeout=300)
            answered = all_answer(one.url, ids, 60)
            time.sleep(1.0)
            restart = {"static": static, "stop_to_ready_s": ready - stopped, "start_to_ready_s": ready - two.started,
                       "all_answer_s": answered and answered - stopped,
                       "other_rebalanced": probe.rebalanced(stopped), **probe.window(stopped)}
            killed = time.time()
            two.kill()
            answered = all_answer(one.url, ids, 120)
            probe.stop()
            failover = {"all_answer_s": answered and answered - killed,
                        "bound_s": SESSION_TIMEOUT_S + 2.0, **probe.window(killed)}
        finally:
            for w in pair:
                w.stop()
        ctx.log(f"  restart with {'static' if static else 'dynamic'} membership: worker 2 ready {restart['start_to_ready_s']:.1f}s "
                f"after its start ({restart['stop_to_ready_s']:.1f}s after its stop); worker 1 "
                f"{'rebalanced' if restart['other_rebalanced'] else 'did not rebalance'}; reads not "
                f"200 for {restart['longest_not_200_s']:.1f}s at most; kill -9 to served by the "
                f"other: {failover['all_answer_s'] or float('nan'):.1f}s (bound "
                f"{failover['bound_s']:.0f}s)")
        return {"restart": {"restart": restart, "failover": failover}}
    return run
