"""Leader killed under load: a 3-node Kafka cluster (replication 3, min.insync.replicas 2),
two workers, a known event set posted over HTTP at a steady rate across both. Halfway
through, the broker that leads the most partitions of `events`, the outbox and the
changelogs is killed with SIGKILL, and restarted some seconds later. A POST answering 503
(or a failed connection) is retried with the same events, as a client does: a 202 means the
cluster has them. Meanwhile every profile read is the profile after some prefix of that
customer's posted events, or a 503. At the end every profile equals the oracle fold (no
event lost, none applied twice) and every purchase's webhook reached the receiver under one
id and one body (retries of that id allowed)."""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter, defaultdict

import aiohttp
import orjson
import pytest

from app.harness import free_port
from app.harness.cluster import Worker
from app.harness.kafka import KafkaCluster
from app.harness.net import get_json, http
from app.webhooks.formats import webhook_id
from tests.conftest import API_KEYS, INGEST, READ
from tests.e2e.test_chaos import Reader
from tests.e2e.test_cluster import both_ready
from tests.support.cluster import poll
from tests.support.expected import prefix_views
from tests.support.receiver import Receiver
from tests.support.stream import synthetic
from tests.support.topics import describe, offsets

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
CUSTOMERS, PER_CUSTOMER = 300, 8      # 2,400 events, ~200 of them purchases
RATE, BATCH = 40.0, 6                 # events/s over HTTP, events per POST
DOWN_S = 15.0                         # how long the killed broker stays down
#: The partitions whose leader matters to ingest and state: the events, the webhook outbox
#: and the tables' changelogs.
TOPICS = ["events", "webhook-deliveries", "persona-profiles-changelog",
          "persona-sessions-changelog", "persona-erasures-changelog",
          "persona-kpis-1m-changelog", "persona-kpis-1d-changelog"]
PURCHASE = "purchase.completed"


@pytest.fixture(scope="module")
def kafka3(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("broker-kill")
    cluster = KafkaCluster(free_port(), tmp / "kafka", nodes=3).start()
    try:
        yield cluster, tmp
    finally:
        cluster.stop()


class Posted:
    """What a read may show: the profile after at most the customer's events posted so far
    (acknowledged or in flight), in posting order. Indexed like the chaos reader's truth."""

    def __init__(self, views: dict):
        self.views, self.sent, self.customers = views, Counter(), []

    def add(self, batch: list[dict]) -> None:
        for e in batch:
            cid = e["customer_id"]
            self.sent[cid] += 1
            if self.sent[cid] == 1:
                self.customers.append(cid)  # after its count: never read with nothing allowed

    def __getitem__(self, cid: str) -> list[bytes]:
        return self.views[cid][:self.sent[cid]]


class Poster(threading.Thread):
    """POSTs the events in batches at a steady rate, alternating between the workers. A 503
    or a failed connection is retried (same batch, same event_ids) until 202, as a client
    does; ``windows`` holds, per batch that failed, the seconds from its first failed attempt
    to its 202; ``slowest`` is the longest a batch took from its first attempt to its 202."""

    def __init__(self, workers: list[Worker], events: list[dict], posted: Posted):
        super().__init__(daemon=True)
        self.workers, self.events, self.posted = workers, events, posted
        self.acked, self.attempts, self.error = 0, Counter(), None
        self.windows: list[float] = []
        self.slowest, self.done_at = 0.0, 0.0
        self.halfway = threading.Event()

    def run(self):
        start = time.monotonic()
        try:
            for n, i in enumerate(range(0, len(self.events), BATCH)):
                batch = self.events[i:i + BATCH]
                self.posted.add(batch)
                self._post(orjson.dumps(batch), n)
                self.acked += len(batch)
                if self.acked >= len(self.events) // 2:
                    self.halfway.set()
                ahead = self.acked / RATE - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as exc:  # surfaced by the test
            self.error = exc
            self.halfway.set()

    def _post(self, body: bytes, n: int) -> None:
        failed_at, first = None, time.monotonic()
        for attempt in range(400):
            w = self.workers[(n + attempt) % len(self.workers)]
            sent = time.monotonic()
            try:
                status, answer = http("POST", f"{w.url}/v1/events", INGEST, body,
                                      {"Content-Type": "application/json"}, timeout=30)
            except (OSError, aiohttp.ClientError) as exc:
                status, answer = 0, repr(exc)
            self.attempts[status] += 1
            if status == 202:
                self.done_at = time.monotonic()
                self.slowest = max(self.slowest, self.done_at - first)
                if failed_at is not None:
                    self.windows.append(self.done_at - failed_at)
                return
            if status not in (0, 503):
                raise AssertionError(f"POST answered {status}: {answer}")
            failed_at = failed_at or sent
            time.sleep(0.5)
        raise AssertionError(f"a batch was refused for {time.monotonic() - failed_at:.0f} s")


def leading_node(bootstrap: str) -> tuple[int, int]:
    """The node leading the most partitions of TOPICS, and how many it leads."""
    led = Counter(leader for t in describe(bootstrap, TOPICS).values()
                  for leader in t["leaders"].values())
    return led.most_common(1)[0]


def full_isr(bootstrap: str) -> bool:
    return all(len(isr) == 3 for t in describe(bootstrap, TOPICS).values()
               for isr in t["isr"].values())


def profile(workers: list[Worker], cid: str) -> tuple[int, object]:
    """One read (from either worker: one of them forwards); status 0 if it cannot connect."""
    return get_json(f"{workers[hash(cid) % 2].url}/v1/customers/{cid}/profile", READ)


def caught_up(workers: list[Worker], final: dict, timeout: float) -> dict:
    """Read every customer until its profile equals the oracle's; the customers still
    different after ``timeout`` (customer -> last answer)."""
    pending = dict.fromkeys(final)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for cid in list(pending):
            got = profile(workers, cid)
            if got == (200, final[cid]):
                del pending[cid]
            else:
                pending[cid] = got
        if pending:
            time.sleep(1)
    return pending


def lost_and_double(workers: list[Worker], final: dict) -> tuple[int, int]:
    """Events missing from, and applied more than once to, the profiles (by event counts)."""
    lost = double = 0
    for cid, want in final.items():
        status, body = profile(workers, cid)
        got = body["event_counts"] if status == 200 else {}
        for kind in set(want["event_counts"]) | set(got):
            diff = got.get(kind, 0) - want["event_counts"].get(kind, 0)
            lost, double = lost + max(0, -diff), double + max(0, diff)
    return lost, double


def test_leader_killed_under_load_loses_nothing(kafka3):
    cluster, tmp = kafka3
    events = sorted(synthetic(CUSTOMERS, PER_CUSTOMER, seed=11), key=lambda e: e["ts"])
    views = prefix_views(events)
    final = {cid: orjson.loads(v[-1]) for cid, v in views.items()}
    triggers = {webhook_id(e["event_id"], "main", PURCHASE): e["customer_id"]
                for e in events if e["type"] == "purchase"}
    receiver = Receiver().start()
    hooks = orjson.dumps([{"id": "main", "url": receiver.url("main"), "events": [PURCHASE],
                           "secret": "broker-kill-secret-0123", "timeout_s": 5}]).decode()
    url = "kafka://" + ";".join(cluster.bootstrap.split(","))
    # A 3 s ingest timeout, shorter than the ~9 s a dead leader takes to be replaced: POSTs
    # then answer 503 and are retried while their first copies may still reach the topic,
    # so the duplicates the rules must drop are part of the test.
    env = {"PERSONA_API_KEYS": API_KEYS, "PERSONA_REPLICATION_FACTOR": "3",
           "PERSONA_INGEST_TIMEOUT_S": "3", "PERSONA_WEBHOOKS": hooks,
           "PERSONA_WEBHOOK_BACKOFF_S": "0.2", "PERSONA_WEBHOOK_BACKOFF_MAX_S": "2",
           "PERSONA_WEBHOOK_MAX_ATTEMPTS": "1000"}
    workers = []
    for _ in range(2):
        port = free_port()
        workers.append(Worker(url, tmp / f"worker-{port}.log", port, tmp / f"worker-{port}",
                              env, compat=False))
    try:
        for w in workers:
            w.start().wait_ready(timeout=180)
        both_ready(*workers)
        node, led = leading_node(cluster.bootstrap)
        posted = Posted(views)
        poster = Poster(workers, events, posted)
        started = time.monotonic()
        poster.start()
        poll(lambda: posted.customers, bool, 30)
        reader = Reader(workers, posted.customers, posted)
        reader.start()
        assert poster.halfway.wait(240) and poster.error is None, poster.error
        cluster.stop_node(node, signal.SIGKILL)
        time.sleep(DOWN_S)
        cluster.start_node(node)
        restarted = time.monotonic()
        assert poll(lambda: full_isr(cluster.bootstrap), bool, 120, interval=1)
        in_sync = time.monotonic() - restarted
        poster.join(timeout=300)
        assert not poster.is_alive() and poster.error is None, poster.error
        pending = caught_up(workers, final, timeout=180)
        caught, after_last = time.monotonic() - restarted, time.monotonic() - poster.done_at
        reader.stop_flag.set()
        reader.join(30)
        lost, double = lost_and_double(workers, final)
        delivered = poll(lambda: {c["id"] for c in receiver.calls if c["status"] == 200},
                         lambda ids: ids >= set(triggers), 120)
        calls = defaultdict(list)
        for c in list(receiver.calls):
            calls[c["id"]].append(c)
        wrong = [v for v in reader.violations if v[0] == "wrong value"]
        on_topic = sum(end - start for start, end in offsets(cluster.bootstrap, "events").values())
        print(f"\nbroker-kill: {len(events)} events ({on_topic} records on the topic: "
              f"retried POSTs leave copies), {len(final)} customers, killed node {node} "
              f"(leader of {led} partitions), lost {lost}, double {double}, wrong reads "
              f"{len(wrong)}; longest 503 window: POST {max(poster.windows, default=0):.1f} s, "
              f"read {max(reader.unavailable_spans, default=0):.1f} s; slowest POST "
              f"{poster.slowest:.1f} s; POST attempts {dict(poster.attempts)}, reads "
              f"{dict(reader.statuses)}; broker in sync {in_sync:.1f} s and profiles caught up "
              f"{caught:.1f} s after the restart ({after_last:.1f} s after the last 202); "
              f"webhooks {len(triggers)} triggers, {len(receiver.calls)} calls; "
              f"{time.monotonic() - started:.0f} s of load and checks")
        assert not pending, f"{len(pending)} customers differ, e.g. {next(iter(pending.items()))}"
        assert lost == 0 and double == 0
        assert not reader.violations, reader.violations[:5]
        assert reader.statuses[200] > 0
        assert set(triggers) <= delivered, f"{len(set(triggers) - delivered)} never delivered"
        assert set(calls) <= set(triggers), f"unknown trigger ids: {set(calls) - set(triggers)}"
        for wid, attempts in calls.items():  # a retry or a redelivery repeats the same body
            assert len({c["body"] for c in attempts}) == 1, (wid, attempts)
            assert {c["customer"] for c in attempts} == {triggers[wid]}, (wid, attempts)
        for w in workers:  # a POST that timed out must not cancel the producer's futures
            assert "Exception in callback functools.partial(<bound method Topic._on_published" \
                not in w.log.read_text(errors="replace"), w.log
    finally:
        for w in workers:
            w.stop()
        receiver.stop()
