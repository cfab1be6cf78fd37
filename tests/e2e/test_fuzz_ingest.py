"""Hypothesis throws malformed bodies at a real worker's POST /v1/events.

Never a 5xx, only 202/400/413/415, and the ``events`` topic ends up holding exactly the
events of the requests that were answered 202: no partial batch from a rejected one.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import API_KEYS, INGEST
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
MAX_EVENTS, MAX_BYTES = 50, 64 * 1024
CTYPES = ["application/json", "application/x-ndjson", "text/plain", "text/plain;charset=UTF-8",
          "application/octet-stream", "", "application/json; charset=latin-1"]


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("fuzz"), API_KEYS, env={
        "PERSONA_INGEST_MAX_EVENTS": str(MAX_EVENTS), "PERSONA_INGEST_MAX_BYTES": str(MAX_BYTES)})
    yield c.start()
    c.stop_all()


def dumps(value) -> bytes:  # stdlib json: integers beyond 64 bits too
    return json.dumps(value, ensure_ascii=False).encode()


def post(url: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {INGEST}"}
    if ctype:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(f"{url}/v1/events", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


ids = st.text(alphabet="abcXYZ019._:@-", min_size=1, max_size=12)
json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
valid = st.one_of(
    st.builds(lambda c, p: {"type": "product_view", "customer_id": c, "product_id": p}, ids, ids),
    st.builds(lambda c, q: {"type": "search", "customer_id": c, "query": q}, ids,
              st.text(min_size=1, max_size=30)),
    st.builds(lambda c, p, n: {"type": "cart_add", "customer_id": c, "product_id": p,
                               "quantity": n}, ids, ids, st.integers(1, 5)),
    st.builds(lambda c, o, p: {"type": "purchase", "customer_id": c, "order_id": o, "total": 3.0,
                               "currency": "EUR", "items": [{"product_id": p, "quantity": 1,
                                                             "price": 3.0}]}, ids, ids, ids),
)
field_names = st.sampled_from(["type", "customer_id", "product_id", "ts", "event_id", "v",
                               "quantity", "items", "session_id", "query", "price"])


@st.composite
def mutated(draw):
    """A valid event with one field replaced by junk, removed, or made huge."""
    ev = dict(draw(valid))
    name, how = draw(field_names), draw(st.sampled_from(["junk", "drop", "huge", "erase"]))
    if how == "junk":
        ev[name] = draw(json_any)
    elif how == "drop":
        ev.pop(name, None)
    elif how == "huge":
        ev[name] = "x" * draw(st.sampled_from([200, 5000, MAX_BYTES]))
    else:
        ev["type"] = draw(st.sampled_from(["erase", "session_timeout", "ERASE", " erase"]))
    return ev


events_list = st.lists(st.one_of(valid, mutated(), json_any), max_size=8)


@st.composite
def body(draw):
    kind = draw(st.sampled_from(["bytes", "json", "array", "ndjson", "valid", "deep", "many"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return dumps(draw(json_any))
    if kind == "array":
        return dumps(draw(events_list))
    if kind == "ndjson":
        lines = [dumps(e) for e in draw(events_list)]
        if lines and draw(st.booleans()):
            lines[draw(st.integers(0, len(lines) - 1))] = draw(st.binary(max_size=20))
        return b"\n".join(lines)
    if kind == "valid":
        return dumps(draw(st.lists(valid, min_size=1, max_size=5)))
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        return b"[" * depth + b"]" * draw(st.sampled_from([depth, depth - 1]))
    return dumps([draw(valid)] * draw(st.sampled_from([MAX_EVENTS, MAX_EVENTS + 1])))


def test_fuzz_never_5xx_and_no_partial_batches(broker, worker):
    accepted: list[str] = []

    @settings(max_examples=250, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(payload=body(), ctype=st.sampled_from(CTYPES))
    def run(payload, ctype):
        status, answer = post(worker.url, payload, ctype)
        assert status in (202, 400, 413, 415), (status, answer[:300], payload[:200], ctype)
        reply = orjson.loads(answer)
        if status == 202:
            assert reply["accepted"] == len(reply["event_ids"]) >= 1
            accepted.extend(reply["event_ids"])
        elif status == 400 and "items" in reply:
            assert reply["items"] and all({"index", "reason", "errors"} <= set(i)
                                          for i in reply["items"])

    run()
    on_topic = [orjson.loads(v)["event_id"] for v in broker.read_all("events")]
    assert sorted(on_topic) == sorted(accepted)
    assert worker.alive()
