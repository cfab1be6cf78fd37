"""Rate limits and forwarded reads, two real workers (README "Rate limits"): workers do not
authenticate each other, so a forwarded read is limited at every worker it reaches (a token
at the first worker and one at the owner), and the owner's 429 comes back with Retry-After."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import API_KEYS
from tests.e2e.test_cluster import both_ready, raw_get

pytestmark = pytest.mark.e2e
PROBE, KEY1, KEY2 = "test-probe-0123456789", "test-rl1-0123456789", "test-rl2-0123456789"
BURST = 4


def test_forwarded_reads_cost_a_token_at_both_workers_and_429_comes_back(cluster):
    env = {"PERSONA_API_KEYS": f"{API_KEYS},{PROBE}:read,{KEY1}:read,{KEY2}:read",
           "PERSONA_RATE_READ": f"1/m:{BURST}"}  # refills one token a minute: none here
    a, b = cluster.start(env=env), cluster.start(env=env)
    both_ready(a, b)

    def path(cid):
        return f"/v1/customers/{cid}/profile"

    # Which worker owns the customer: with the (unauthenticated) forwarded marker the owner
    # answers 404 for an unknown customer, the other one 503 (it does not own it).
    owner = None
    for _ in range(BURST):
        cid = f"rlc-{uuid.uuid4().hex[:8]}"
        answers = [raw_get(f"{w.url}{path(cid)}", PROBE, {"X-Persona-Forwarded": "1"})[0]
                   for w in (a, b)]
        if sorted(answers) == [404, 503]:
            owner, other = (a, b) if answers[0] == 404 else (b, a)
            break
    assert owner is not None, "no stable owner found"

    # KEY1 only ever calls the other worker: each read costs a token there and at the owner.
    statuses = [raw_get(f"{other.url}{path(cid)}", KEY1)[0] for _ in range(BURST + 1)]
    assert statuses == [404] * BURST + [429], statuses
    status, headers, _ = raw_get(f"{owner.url}{path(cid)}", KEY1)
    assert status == 429 and int(headers["Retry-After"]) >= 1  # spent by the forwards

    # KEY2 spends its tokens at the owner; a read through the other worker (which still has
    # tokens) is forwarded and the owner's 429 and Retry-After are passed back.
    assert [raw_get(f"{owner.url}{path(cid)}", KEY2)[0] for _ in range(BURST)] == [404] * BURST
    status, headers, body = raw_get(f"{other.url}{path(cid)}", KEY2)
    assert status == 429 and int(headers["Retry-After"]) >= 1, (status, body)
    assert b'"limit":"read"' in body
