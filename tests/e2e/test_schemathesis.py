"""Schemathesis against a real worker's ``/openapi.json``.

One real worker on the module's broker, with a key of every kind (admin, read, ingest,
metrics, publishable), identity verification on and the demo enabled, so every documented
answer can happen. The document is fetched from the worker (``schemathesis.openapi.from_url``).

- **Stateless**: every operation, with each key kind as ``Authorization`` (and the publishable
  key as ``?key=`` on ingest), ``EXAMPLES`` generated cases each, all of schemathesis's
  checks: no 5xx, status codes, content types, headers and bodies as documented, valid
  (positive) data never refused with a 4xx other than 401/403/404/429, and a route that
  answers 2xx with the key refuses the same request without it (``ignored_auth``).
- **Stateful**: the document's OpenAPI links (an accepted event -> a read of its customer
  with the answer's ``token`` as ``?after=``, or its erase; an erase -> a read after its
  token), chains of up to ``STEPS`` calls with the admin key; a read after a token of the
  same customer's write must be 200/304, after its erase 404. ``use_after_free`` is left
  out: an erase is asynchronous (202), the reads after its token check it instead.

Two things the document cannot say, so the positive-data check is left out for them and a
narrower check takes its place: ``?after=`` is valid only for a token of an earlier write of
that customer's partition (a 400 must then name ``after``; a 503 must be "not yet applied"),
and ``text/plain``/NDJSON bodies are strings holding JSON (a 400 must be the per-item
answer, or for the Segment route a body that is not a JSON object). A documented 503
"unavailable" (broker) is retried once (``retried``). The number of cases is printed at the
end of the pytest run (``tests/conftest.py``).
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error, positive_data_acceptance, use_after_free

from app.rules.events import key_of
from tests.conftest import ADMIN, API_KEYS, CASES_PROPERTY, INGEST, READ
from tests.support.cluster import Cluster
from web.openapi import SPEC

pytestmark = pytest.mark.e2e
METRICS, PUBLISHABLE = "test-metrics-0123456789", "test-publishable"
SECRET = "identity-secret-for-schemathesis-0123"
KEYS = {"admin": ADMIN, "read": READ, "ingest": INGEST, "metrics": METRICS,
        "publishable": PUBLISHABLE}
EXAMPLES = 25  # per (operation, key kind): bounds the run time (`make test` stays fast)
STATEFUL_EXAMPLES, STEPS = 60, 6
OPERATIONS = [(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops]
CASES: Counter = Counter()
STRING_BODIES = ("text/plain", "application/x-ndjson")
#: Positive generation only (README "Decisions"): negative mode also sends unknown query
#: parameters and extra fields, which the API ignores on purpose. Should negative mode be
#: switched on, a body over a size limit (413) counts as refused.
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "positive"}, "checks": {
    "negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]}}})


def hypothesis_settings(**kw) -> hsettings:
    return hsettings(deadline=None, database=None, derandomize=False, phases=[
        Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), **kw)


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    c = Cluster(broker, tmp_path_factory.mktemp("schemathesis"),
                f"{API_KEYS},{METRICS}:metrics,{PUBLISHABLE}:publishable",
                env={"PERSONA_IDENTITY_SECRET": SECRET, "PERSONA_DEMO_KEY": PUBLISHABLE,
                     "PERSONA_CORS_ORIGINS": "https://shop.example"})
    yield c.start()
    c.stop_all()


@pytest.fixture(scope="module")
def schema(worker):
    return schemathesis.openapi.from_url(f"{worker.url}/openapi.json", config=CONFIG)


@pytest.fixture
def counted(record_property):
    """Counts this test's cases; the total is printed at the end of the run (conftest)."""
    before = sum(CASES.values())
    yield
    record_property(CASES_PROPERTY, sum(CASES.values()) - before)


def narrow_checks(case, response) -> list:
    """The checks to leave out for ``case`` (see the module docstring), after running the
    narrower ones in their place. Negative cases (stateful) keep every check but this: a
    read after a real token may be 503 "not yet applied" when ``wait_ms`` ran out (documented,
    with Retry-After)."""
    if "after" in (case.query or {}) and response.status_code == 503:
        assert response.json()["error"] == "not yet applied", response.text
        assert int(response.headers["retry-after"][0]) >= 1  # lower-case names, value lists
        return [not_a_server_error]
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return []
    if "after" in (case.query or {}) and response.status_code == 400:
        assert "after" in response.json()["fields"] or "wait_ms" in response.json()["fields"] \
            or "limit" in response.json()["fields"], response.text
        return [positive_data_acceptance]
    if response.status_code == 400 and _only_duplicate_ids(response):
        # Two items of one request with one event_id: refused (documented), and a rule
        # across array items that JSON Schema cannot state, so the generator may make it.
        return [positive_data_acceptance]
    if case.media_type in STRING_BODIES and response.status_code in (400, 413):
        body = response.json()
        assert body["error"] in ("invalid events", "no events", "malformed JSON",
                                 "too many events", "invalid body"), response.text
        return [positive_data_acceptance]
    return []


def _only_duplicate_ids(response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    items = body.get("items") if isinstance(body, dict) else None
    return bool(items) and body.get("error") == "invalid events" and all(
        item.get("reason") == "duplicate event_id" for item in items)


def retried(send):
    """``send()``, once more after ``Retry-After`` if the broker did not acknowledge in time
    (503 "unavailable": documented, and what every client does; on this shared 2-core machine
    the bundled broker has stalled a produce for 10 s once). The second answer is checked."""
    response = send()
    if response.status_code == 503 and response.headers.get("retry-after") \
            and response.json().get("error") == "unavailable":
        time.sleep(min(5, int(response.headers["retry-after"][0])))
        response = send()
    return response


def call(case, base_url: str, headers: dict, params: dict | None = None):
    if params and "key" in params and case.headers:  # a generated bearer would win over ?key=
        case.headers.pop("Authorization", None)
    response = retried(lambda: case.call(base_url=base_url, headers=headers, params=params))
    case.validate_response(response, headers=headers,
                           excluded_checks=narrow_checks(case, response),
                           transport_kwargs={"base_url": base_url, "params": params})
    CASES[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    return response


def test_the_served_document_is_web_openapi(worker):
    served = requests.get(f"{worker.url}/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(SPEC))


def fuzz(operation, base_url: str, headers: dict, params: dict | None) -> None:
    """``EXAMPLES`` generated cases of one operation with one credential."""
    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES)
    def run(case):
        call(case, base_url, headers, params)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_stateless(schema, worker, counted, method, path):
    operation = schema[path][method]
    secured = bool(SPEC["paths"][path][method.lower()]["security"])
    runs = [(kind, {"Authorization": f"Bearer {key}"}, None) for kind, key in KEYS.items()]
    if (method, path) == ("POST", "/v1/events"):
        runs.append(("publishable ?key=", {}, {"key": PUBLISHABLE}))
    if not secured:
        runs = [("none", {}, None)]
    for _kind, headers, params in runs:
        fuzz(operation, worker.url, headers, params)
    assert CASES[f"{method} {path}"] >= len(runs)  # an operation without inputs has one case


def test_stateful_links(schema, worker, counted):
    written: dict[str, set] = {}  # write token -> partition keys (customers) it wrote
    erased: dict[str, str] = {}  # erase token -> the customer, while nothing wrote it again
    base = schema.as_state_machine()

    class Admin(base):
        def call(self, case, **kwargs):
            return retried(lambda: case.call(**kwargs))

        def get_call_kwargs(self, case):
            return {"base_url": worker.url, "headers": {"Authorization": f"Bearer {ADMIN}"}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            token = (case.query or {}).get("after")
            customer = (case.path_parameters or {}).get("customer_id")
            positive = case.meta is None or case.meta.generation.mode.is_positive
            wait_ms = (case.query or {}).get("wait_ms", 1000)
            # Given time (the links ask for 5 s), a read after a write must see it.
            waited = positive and isinstance(wait_ms, int) and wait_ms >= 2000
            if waited and token in written and customer in written[token]:
                # A read after this customer's own write: the owner waited for it.
                assert response.status_code in (200, 304), (case.path, response.text)
                CASES["stateful reads after their write"] += 1
            if waited and erased.get(token) == customer and customer is not None:
                assert response.status_code == 404, (case.path, response.text)
                CASES["stateful reads after their erase"] += 1
            case.validate_response(response, additional_checks=additional_checks,
                                   excluded_checks=[use_after_free, *narrow_checks(case, response)],
                                   transport_kwargs=kwargs, recorder=self.recorder)

        def after_call(self, response, case):
            super().after_call(response, case)
            CASES["stateful steps"] += 1
            if response.status_code != 202:
                return
            if case.operation.path == "/v1/events":
                body = case.body if isinstance(case.body, list) else [case.body]
                keys = {key_of(e) for e in body}
                written[response.json()["token"]] = keys
                for t in [t for t, c in erased.items() if c in keys]:
                    del erased[t]  # written again since the erase
            elif case.method.upper() == "DELETE":  # a read after an earlier write may be 404
                cid = case.path_parameters["customer_id"]
                for customers in written.values():
                    customers.discard(cid)
                erased[response.json()["token"]] = cid

    # Random exploration follows a write's link to a waited read in most runs, not all
    # (a clean-clone run once had none): explore again, up to twice, rather than
    # pass without one.
    # The state machine draws from bundles the live server's answers fill, so hypothesis
    # can find a step drawing differently than when it first explored that prefix
    # (FlakyStrategyDefinition: two of the suite runs here). That says nothing about the
    # server; one such exploration is run again, a second fails the test.
    flaky = 0
    for _ in range(3):
        try:
            Admin.run(settings=hypothesis_settings(max_examples=STATEFUL_EXAMPLES,
                                                   stateful_step_count=STEPS))
        except FlakyStrategyDefinition:
            flaky += 1
            if flaky > 1:
                raise
            continue
        if CASES["stateful reads after their write"]:
            break
    assert CASES["stateful reads after their write"], "no link followed from an accepted write"
    assert CASES["stateful steps"] >= STATEFUL_EXAMPLES
