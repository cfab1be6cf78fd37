"""app.auth.ratelimit: token buckets (refill, burst, debt, Retry-After, eviction), the settings'
format and the client address; the clock is passed in."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth.ratelimit import (
    Buckets,
    Rate,
    RateConfig,
    client_address,
    parse_rate,
    rate_config,
    retry_after_header,
)
from app.settings import ConfigError, load


def test_burst_then_refill_at_the_rate():
    b = Buckets(Rate(per_s=2.0, burst=3.0))
    assert [b.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k", 0.0) == pytest.approx(0.5)  # one token comes in 1/2 s
    assert b.take("k", 0.25) == pytest.approx(0.25)  # refused: nothing taken
    assert b.take("k", 0.5) == 0.0
    assert b.take("k", 100.0, cost=3) == 0.0  # refilled to the burst, never above
    assert b.take("k", 100.0) == pytest.approx(0.5)


def test_keys_are_independent():
    b = Buckets(Rate(1.0, 1.0))
    assert b.take("a", 0.0) == 0.0 and b.take("a", 0.0) > 0
    assert b.take("b", 0.0) == 0.0


def test_a_cost_over_the_burst_waits_for_a_full_bucket_then_leaves_a_debt():
    b = Buckets(Rate(per_s=10.0, burst=10.0))
    assert b.take("k", 0.0, cost=4) == 0.0
    assert b.take("k", 0.0, cost=25) == pytest.approx(0.4)  # needs a full bucket (10)
    assert b.take("k", 0.4, cost=25) == 0.0  # admitted: 10 - 25 = -15 tokens
    assert b.take("k", 0.4) == pytest.approx(1.6)  # the debt is paid back first
    assert b.wait("k", 2.0) == 0.0


def test_a_clock_going_back_refills_nothing():
    b = Buckets(Rate(1.0, 1.0))
    assert b.take("k", 10.0) == 0.0
    assert b.take("k", 5.0) == pytest.approx(1.0)
    assert b.take("k", 11.0) == 0.0


@pytest.mark.parametrize("seconds, header", [(0.001, "1"), (0.5, "1"), (1.0, "1"),
                                             (1.01, "2"), (59.2, "60"), (0.0, "1")])
def test_retry_after_is_whole_seconds_rounded_up(seconds, header):
    assert retry_after_header(seconds) == header


@given(st.floats(0.1, 1000), st.floats(1, 1000),
       st.lists(st.tuples(st.floats(0, 5), st.integers(1, 50)), max_size=60))
def test_admitted_cost_never_exceeds_burst_plus_rate_times_time(per_s, burst, steps):
    """Whatever the arrivals: admitted <= burst + per_s * elapsed + one request's debt, and
    a refused request is admitted once its Retry-After has passed (if no one else took)."""
    b, now, admitted = Buckets(Rate(per_s, burst)), 0.0, 0.0
    for gap, cost in steps:
        now += gap
        wait = b.take("k", now, cost)
        if wait == 0.0:
            admitted += cost
        else:
            assert b.take("k", now + wait + 1e-6, cost) == 0.0
            now += wait + 1e-6
            admitted += cost
        assert admitted <= burst + per_s * now + cost + 1e-6


def test_lru_bound_and_idle_buckets_are_dropped():
    b = Buckets(Rate(per_s=1.0, burst=2.0), max_keys=3)
    for key in "abcd":
        b.take(key, 0.0)
    assert len(b) == 3 and "a" not in b._buckets  # least recently used went first
    b.take("b", 0.5)  # b is now the most recently used
    b.take("e", 0.5)
    assert list(b._buckets) == ["d", "b", "e"]
    # Idle long enough to be full again: dropped (two per call), nothing is lost by it.
    b.take("f", 10.0)
    assert list(b._buckets) == ["e", "f"] or list(b._buckets) == ["f"]
    b.take("f", 20.0)
    assert list(b._buckets) == ["f"]


def test_a_busy_bucket_is_not_dropped_as_idle():
    b = Buckets(Rate(per_s=1.0, burst=10.0))
    for _ in range(10):
        b.take("busy", 0.0)
    b.take("other", 5.0)  # busy holds 5 of 10: not full, kept
    assert "busy" in b._buckets


@pytest.mark.parametrize("raw, rate", [
    ("", None), ("0", None), ("off", None), (" 100/s:200 ", Rate(100.0, 200.0)),
    ("5/s", Rate(5.0, 5.0)), ("0.5/s", Rate(0.5, 1.0)), ("60/m:10", Rate(1.0, 10.0)),
    ("2.5/s:3", Rate(2.5, 3.0)),
])
def test_rate_format(raw, rate):
    assert parse_rate(raw, "PERSONA_RATE_READ") == rate


@pytest.mark.parametrize("raw, problem", [
    ("100", "must be '<rate>/s"), ("100/h", "must be '<rate>/s"), ("x/s", "must be"),
    ("10/s:y", "must be"), ("-1/s", "rate must be a number > 0"), ("nan/s", "> 0"),
    ("inf/s", "> 0"), ("10/s:0", "burst must be a number from 1"), ("10/s:nan", "burst"),
    ("0/s", "> 0"),
])
def test_bad_rates_name_the_variable(raw, problem):
    with pytest.raises(ValueError) as info:
        parse_rate(raw, "PERSONA_RATE_INGEST")
    assert str(info.value).startswith("PERSONA_RATE_INGEST") and problem in str(info.value)


def test_settings_carry_the_limits_and_refuse_bad_ones():
    assert load({}).rates == RateConfig()
    s = load({"PERSONA_RATE_INGEST": "100/s:500", "PERSONA_RATE_READ": "50/s",
              "PERSONA_RATE_PUBLISHABLE": "20/s:100", "PERSONA_TRUSTED_PROXY_HOPS": "1"})
    assert s.rates == RateConfig(Rate(100, 500), Rate(50, 50), Rate(20, 100), 1)
    for env, variable in [({"PERSONA_RATE_READ": "fast"}, "PERSONA_RATE_READ"),
                          ({"PERSONA_RATE_PUBLISHABLE": "1/s:0"}, "PERSONA_RATE_PUBLISHABLE"),
                          ({"PERSONA_TRUSTED_PROXY_HOPS": "-1"}, "PERSONA_TRUSTED_PROXY_HOPS"),
                          ({"PERSONA_TRUSTED_PROXY_HOPS": "99"}, "PERSONA_TRUSTED_PROXY_HOPS")]:
        with pytest.raises(ConfigError, match=f"^{variable}"):
            load(env)
    assert rate_config({}).trusted_hops == 0


def test_client_address_believes_forwarded_for_only_through_trusted_hops():
    xff = ["6.6.6.6, 1.2.3.4", "10.0.0.7"]  # client-written, client as seen by proxy 1, by 2
    assert client_address("10.0.0.9", xff, 0) == "10.0.0.9"  # default: the TCP peer
    assert client_address("10.0.0.9", xff, 1) == "10.0.0.7"
    assert client_address("10.0.0.9", xff, 2) == "1.2.3.4"
    assert client_address("10.0.0.9", [], 2) == "10.0.0.9"  # fewer entries than hops
    assert client_address(None, [], 0) == ""


def test_the_module_imports_without_faust_aiohttp_or_settings():
    code = ("import sys\n"
            "import app.auth.ratelimit\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('faust', 'aiohttp', 'mode')"
            " or m == 'app.settings']\n"
            "assert not bad, bad\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_paid_tokens_count_towards_a_later_take_of_the_same_request():
    b = Buckets(Rate(per_s=1.0, burst=5.0))
    assert b.take("k", 0.0) == 0.0  # one token before the body is read: 4 left
    assert b.take("k", 0.0, cost=5, paid=1) == 0.0  # 5 needed, 1 already paid: 0 left
    assert b.take("k", 0.0) == pytest.approx(1.0)
    assert b.take("k", 1.0) == 0.0
    assert b.take("k", 1.0, cost=3, paid=1) == pytest.approx(2.0)  # nothing taken
    assert b.wait("k", 3.0, cost=3, paid=1) == 0.0


class FakeRequest(dict):
    def __init__(self, remote, headers=(), **items):
        super().__init__(items)
        from multidict import CIMultiDict
        self.remote, self.headers, self.match_info = remote, CIMultiDict(headers), None


def test_web_wiring_charges_key_and_address_buckets_and_answers_429(monkeypatch):
    from app.auth.apikeys import PUBLISHABLE
    from app.observability import metrics
    from web import ratelimit as web_rl

    monkeypatch.setattr(web_rl, "BUCKETS", {"ingest": Buckets(Rate(10, 10)),
                                            "read": Buckets(Rate(1, 2)),
                                            "publishable": Buckets(Rate(1, 3))})
    before = metrics.RATE_LIMITED.labels("unmatched", "publishable")._value.get()
    pk = {"persona.principal": "key:pk", "persona.scopes": frozenset({"ingest", PUBLISHABLE})}
    visitor = FakeRequest("1.1.1.1", [("X-Forwarded-For", "9.9.9.9")], **pk)
    assert web_rl.admit("ingest", visitor) is None
    assert web_rl.charge_ingest(visitor, 3) is None  # 3 events: the address's burst
    body, headers = web_rl.admit("ingest", visitor)
    assert headers == {"Retry-After": "1"} and body["limit"] == "publishable"
    assert body["error"] == "rate limited" and body["retry_after"] == 1
    spoofed = FakeRequest("1.1.1.1", [("X-Forwarded-For", "8.8.8.8")], **pk)
    assert web_rl.admit("ingest", spoofed) is not None  # XFF not trusted by default
    other = FakeRequest("2.2.2.2", **pk)
    assert web_rl.admit("ingest", other) is None  # another address: its own bucket
    assert metrics.RATE_LIMITED.labels("unmatched", "publishable")._value.get() == before + 2
    # The key-wide ingest bucket took 3 + 1 events of the publishable key; a server key
    # has its own.
    server = FakeRequest("1.1.1.1", **{"persona.principal": "key:server",
                                       "persona.scopes": frozenset({"ingest"})})
    assert web_rl.admit("ingest", server) is None and web_rl.charge_ingest(server, 10) is None
    assert web_rl.admit("ingest", server)[0]["limit"] == "ingest"
    reader = FakeRequest("1.1.1.1", **{"persona.principal": "key:server"})
    assert web_rl.admit("read", reader) is None and web_rl.admit("read", reader) is None
    assert web_rl.admit("read", reader)[0]["limit"] == "read"
    assert web_rl.admit("admin", reader) is None  # erase and metrics are not limited


def test_principals_are_key_digests_or_jwt_issuer_and_subject():
    import asyncio

    from app.auth.apikeys import digest
    from web import auth

    keys = [(digest("k1"), frozenset({"read"}))]
    assert asyncio.run(auth.bearer_auth("Bearer k1", keys=keys)) == (
        frozenset({"read"}), auth.key_principal("k1"))
    assert asyncio.run(auth.bearer_auth("Bearer k2", keys=keys)) == (None, None)
    assert "k1" not in auth.key_principal("k1")
    a = auth.jwt_principal({"sub": "svc", "iss": "https://idp-a"}, "t1")
    assert a == auth.jwt_principal({"sub": "svc", "iss": "https://idp-a"}, "t2")  # new token
    assert a != auth.jwt_principal({"sub": "svc", "iss": "https://idp-b"}, "t1")
    assert auth.jwt_principal({}, "t1") != auth.jwt_principal({}, "t2")
