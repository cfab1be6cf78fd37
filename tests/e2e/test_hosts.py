"""Several hosts: three workers and a 3-node Kafka cluster, each on a host of its own
(network namespaces on a bridge, ``app.harness.hosts``), each worker binding and advertising
its host's address and forwarding lookups to the others over that network.

Under a steady event stream: one worker host is cut off from the cluster (its clients still
reach it) for longer than the group session timeout, then healed; then one host's link gets
100 ms of delay and 1 % loss. Every answer seen through any host must be true (the profile
after some prefix of the customer's events) or a 503; the cut-off worker must not answer
200 past the staleness bound (docs/consistency.md); at the end every profile, read through
every host and through the Python client pointed at one host, equals the pure fold: the
cut-off worker wrote none of its older state after the heal (the write lease).
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from app.client import PersonaClient
from app.harness.cluster import Broker, Worker
from app.harness.hosts import Hosts, NetnsUnavailable, leftovers
from app.harness.net import get_json, http
from tests.conftest import ADMIN, API_KEYS, READ
from tests.support.cluster import poll
from tests.support.reads import Reads, longest_503_window, percentile
from tests.support.stream import Producer, synthetic, truths

pytestmark = [pytest.mark.e2e, pytest.mark.hosts, pytest.mark.timeout(480)]


RATE = 30.0  # events/s
BOUND_S = 10.0  # PERSONA_GROUP_SESSION_TIMEOUT_S (its default): the staleness bound
CUT_S = 25.0  # longer than the session timeout: the group gives the host's partitions away
WORKERS = ("w1", "w2", "w3")


def hosts(names) -> Hosts:
    try:
        return Hosts(names).up()
    except NetnsUnavailable as exc:
        pytest.fail(f"multi-host tests: {exc}", pytrace=False)


def test_a_failed_run_leaves_no_namespace_link_or_process_and_a_cut_host_keeps_its_clients():
    net = hosts(["a", "b"])
    server = [sys.executable, "-m", "http.server", "8000", "--bind", net["b"].addr]
    proc = subprocess.Popen(net.cmd("b", server), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    probe = f"import urllib.request as u; u.urlopen('http://{net['b'].addr}:8000/', timeout=2)"
    with pytest.raises(RuntimeError, match="a failing test"):
        with net:
            url = f"http://{net['b'].addr}:8000/"
            assert poll(lambda: get_json(url, timeout=2)[0], lambda s: s == 200, 15) == 200
            assert subprocess.run(net.cmd("a", [sys.executable, "-c", probe])).returncode == 0
            net.cut("b")
            assert subprocess.run(net.cmd("a", [sys.executable, "-c", probe]),
                                  capture_output=True).returncode != 0  # the other host: cut
            assert get_json(url, timeout=2)[0] == 200  # the starting process: still served
            net.heal("b")
            assert subprocess.run(net.cmd("a", [sys.executable, "-c", probe])).returncode == 0
            raise RuntimeError("a failing test")
    assert proc.wait(10) is not None  # killed with its namespace
    assert leftovers(net.tag) == []


def test_hosts(tmp_path):
    events = synthetic(45, 50)
    events.sort(key=lambda e: e["ts"])
    truth, final = truths(events)
    customers = sorted(final)
    with hosts(["kafka", *WORKERS]) as net:
        kafka = net["kafka"]
        broker = Broker(9092, tmp_path / "kafka" / "broker.log", "kafka", nodes=3,
                        host=kafka.addr, netns=kafka.netns)
        workers: dict[str, Worker] = {}
        try:
            broker.start()
            env = {"PERSONA_API_KEYS": API_KEYS, "PERSONA_REPLICATION_FACTOR": "3"}
            for name in WORKERS:  # every worker on port 6066 of its own host
                workers[name] = Worker(broker, tmp_path / f"{name}.log", 6066, tmp_path / name,
                                       env, host=net[name].addr, netns=net[name].netns).start()
                if name == WORKERS[0]:  # it creates the topics (docs/operations.md: first start)
                    workers[name].wait_ready(180)
            for w in workers.values():
                w.wait_ready(180)
            scenario(net, workers, broker, events, truth, final, customers)
        finally:
            for w in workers.values():
                w.stop(timeout=20)
            broker.stop()
    assert leftovers(net.tag) == []


def ready(w: Worker) -> tuple[int, dict]:
    status, body = get_json(f"{w.url}/ready", timeout=3)
    return status, body or {}


def scenario(net, workers, broker, events, truth, final, customers):
    urls = {name: w.url for name, w in workers.items()}
    assert all(re.match(rf"http://{net.subnet}\.\d+:6066$", u) for u in urls.values()), urls
    producer = Producer(broker.bootstrap, events, RATE)
    reads = Reads(urls, READ, customers, truth)
    producer.start()
    reads.start()

    time.sleep(10)
    net.cut("w3")  # w3 loses brokers and peers; this process still reaches it
    t_cut = time.monotonic()
    status, body = poll(lambda: ready(workers["w3"]),
                        lambda r: "group_contact_age_s" in r[1], BOUND_S + 5)
    assert status == 503 and body["staleness_bound_s"] == BOUND_S, body
    time.sleep(max(0.0, t_cut + CUT_S - time.monotonic()))
    net.heal("w3")
    t_heal = time.monotonic()
    status, body = poll(lambda: ready(workers["w3"]),
                        lambda r: r[0] == 200 and r[1].get("active_partitions", 0) > 0, 120)
    assert status == 200, body
    heal_s = time.monotonic() - t_heal
    for w in workers.values():
        assert poll(lambda w=w: ready(w)[0], lambda s: s == 200, 60) == 200, w.tail()

    how = net.slow("w2", 100, 1.0)  # 100 ms delay and 1 % loss on w2's link
    t_slow = time.monotonic()
    time.sleep(15)
    net.fast("w2")
    t_fast = time.monotonic()

    producer.join(timeout=len(events) / RATE + 120)
    assert producer.error is None, repr(producer.error)
    assert producer.sent == len(events)
    time.sleep(2)
    reads.stop()

    # routing: every customer through every host (two of three forwarded over the network)
    mismatched, deadline = {}, time.monotonic() + 90
    while time.monotonic() < deadline:
        mismatched = {}
        for cid in customers:
            for name, w in workers.items():
                got = http("GET", f"{w.url}/v1/customers/{cid}/profile", READ)
                if got != (200, final[cid]):
                    mismatched[(name, cid)] = got
        if not mismatched:
            break
        time.sleep(1)
    if not mismatched:
        with PersonaClient(urls["w1"], READ) as client:  # the Python client, one host
            assert {cid: client.profile(cid) for cid in customers} == final
    abandoned = 0.0
    for w in workers.values():
        text = http("GET", f"{w.url}/metrics", ADMIN)[1]
        found = re.search(r"^persona_writeback_abandoned_events_total ([\d.e+]+)$", text, re.M)
        abandoned += float(found.group(1)) if found else 0.0
        for routing in ("forwarded", "for_peer"):  # sent to the owner / answered for a peer
            line = rf'^persona_http_requests_total{{.*routing="{routing}".*}} [1-9]'
            assert re.search(line, text, re.M), f"{w.url}: no {routing} lookup"

    answers = reads.answers
    w3_cut = [a for a in answers if a.host == "w3" and t_cut <= a.sent < t_heal]
    stale = [a for a in w3_cut if a.status == 200 and a.sent > t_cut + BOUND_S]
    w3_served = [a.sent - t_cut for a in w3_cut if a.status == 200]
    netem = [a.took for a in answers if t_slow <= a.sent < t_fast and a.status == 200]
    via_w2 = [a.took for a in answers
              if t_slow <= a.sent < t_fast and a.status == 200 and a.host == "w2"]
    cut_answers = set(w3_cut)
    window = longest_503_window(answers, skip=lambda a: a in cut_answers)
    statuses = {s: sum(a.status == s for a in answers) for s in sorted({a.status for a in answers})}
    behind = [v for v in reads.violations if v[0] == "404 after a value"]
    first_503 = min((a.sent for a in w3_cut if a.status == 503), default=t_cut)
    back = min((a.sent for a in answers if a.host == "w3" and a.sent > t_heal
                and a.status == 200), default=t_heal)
    print(f"\nhosts: longest 503 window {window:.1f} s (the cut-off host itself: last 200 "
          f"{max(w3_served, default=0):.1f} s after the cut, 503 for {back - first_503:.1f} s "
          f"until served again), stale reads "
          f"{len(stale)}, time to heal {heal_s:.1f} s, p99 lookup latency with netem "
          f"(100 ms, 1 %, {how}) {percentile(netem, 0.99) * 1000:.0f} ms (through the slow "
          f"host {percentile(via_w2, 0.99) * 1000:.0f} ms; p50 "
          f"{percentile(netem, 0.5) * 1000:.0f} ms); answers {statuses}; "
          f"{len(events)} events, {producer.retries} producer retries; "
          f"{len(behind)} 404s after a value, {len(mismatched)} answers off the fold "
          f"at the end, {abandoned} events dropped unwritten by the cut-off worker")
    assert reads.violations == [], reads.violations[:5]
    assert stale == [], stale[:5]
    assert sum(a.status == 503 for a in w3_cut) > 0  # it did answer, and said 503
    assert len(netem) > 50 and len(via_w2) > 10
    lost = {k: {f: (v[1].get(f), final[k[1]][f]) for f in final[k[1]]
                if v[1].get(f) != final[k[1]][f]} if isinstance(v[1], dict) else v[0]
            for k, v in list(mismatched.items())[:3]}
    assert mismatched == {}, (f"{len(mismatched)} (host, customer) answers differ from the fold "
                              f"after the heal, e.g. (got, want) {lost}")
