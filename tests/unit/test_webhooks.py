"""Webhooks, pure: signing, retry policy, configuration, trigger decisions, outbox records."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import orjson
import pytest

from app.rules import profile_state, session_state, triggers
from app.rules.events import validate_dict
from app.rules.triggers import CART_ABANDONED, CART_UPDATED, PURCHASE
from app.webhooks import formats, policy, signing, subscriptions

IDLE_MS = 30 * 60 * 1000
T0 = 1_700_000_000_000


# --- signing ---------------------------------------------------------------------------

def expected_signature(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_sign_plain_secret_uses_utf8_bytes():
    body = b'{"type":"cart.updated","data":{"x":1}}'
    got = signing.sign("s3cr\u00e9t", "msg_1", 1700000000, body)
    assert got == expected_signature("s3cr\u00e9t".encode("utf-8"), "msg_1", 1700000000, body)


def test_sign_whsec_secret_is_base64_decoded():
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"a": 1}'
    assert signing.sign(secret, "msg_x", 42, body) == expected_signature(key, "msg_x", 42, body)
    assert signing.sign(secret, "msg_x", 42, body) != expected_signature(secret.encode(), "msg_x", 42, body)


def test_standard_webhooks_reference_vector():
    # The example of the Standard Webhooks libraries' test suites.
    got = signing.sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                        1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_carry_id_timestamp_and_a_verifiable_signature():
    h = signing.headers("topsecret", "msg_abc", b"{}", now=1700000123)
    assert h["webhook-id"] == "msg_abc" and h["webhook-timestamp"] == "1700000123"
    assert h["webhook-signature"] == expected_signature(b"topsecret", "msg_abc", 1700000123, b"{}")
    assert h["content-type"] == "application/json"


def test_webhook_id_is_deterministic_per_event_subscription_and_kind():
    a = formats.webhook_id("ev-1", "crm", PURCHASE)
    assert a == formats.webhook_id("ev-1", "crm", PURCHASE) and a.startswith("msg_")
    assert len({a, formats.webhook_id("ev-2", "crm", PURCHASE),
                formats.webhook_id("ev-1", "erp", PURCHASE),
                formats.webhook_id("ev-1", "crm", CART_UPDATED)}) == 4


# --- retry policy ----------------------------------------------------------------------

@pytest.mark.parametrize("attempt,bound", [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (8, 60.0), (30, 60.0)])
def test_backoff_is_full_jitter_below_a_capped_exponential(attempt, bound):
    assert policy.backoff_delay(attempt, 0.5, 60.0, rand=lambda: 1.0) == bound
    assert policy.backoff_delay(attempt, 0.5, 60.0, rand=lambda: 0.0) == 0.0
    for _ in range(200):
        assert 0.0 <= policy.backoff_delay(attempt, 0.5, 60.0) <= bound


@pytest.mark.parametrize("status,outcome", [
    (200, "ok"), (201, "ok"), (204, "ok"), (299, "ok"),
    (None, "retry"), (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
    (301, "give_up"), (400, "give_up"), (401, "give_up"), (403, "give_up"), (404, "give_up"),
    (410, "give_up"), (422, "give_up"),
])
def test_status_classification(status, outcome):
    assert policy.classify(status) == outcome


def test_retry_after_seconds_capped():
    assert policy.retry_after_s("3", 60.0) == 3.0
    assert policy.retry_after_s("3600", 60.0) == 60.0
    assert policy.retry_after_s("-5", 60.0) == 0.0
    assert policy.retry_after_s(None, 60.0) is None
    assert policy.retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 60.0) is None


# --- configuration ---------------------------------------------------------------------

GOOD = [{"id": "crm", "url": "https://crm.example/hooks", "secret": "whsec_" + base64.b64encode(b"k" * 24).decode(),
         "events": ["purchase.completed", "cart.abandoned"], "timeout_s": 2.5},
        {"id": "bi", "url": "http://127.0.0.1:9/x", "secret": "plain-secret-16bytes", "events": ["cart.updated"]}]


def test_parse_subscriptions():
    subs = subscriptions.parse_subscriptions(json.dumps(GOOD))
    assert [s.id for s in subs] == ["crm", "bi"]
    assert subs[0].events == {PURCHASE, CART_ABANDONED} and subs[0].timeout_s == 2.5
    assert subs[1].timeout_s == subscriptions.DEFAULT_TIMEOUT_S
    assert subscriptions.load_subscriptions("", "") == ()


def test_subscriptions_from_a_file(tmp_path):
    path = tmp_path / "hooks.json"
    path.write_text(json.dumps(GOOD))
    assert len(subscriptions.load_subscriptions("", str(path))) == 2
    with pytest.raises(subscriptions.WebhookConfigError, match="not both"):
        subscriptions.load_subscriptions(json.dumps(GOOD), str(path))
    with pytest.raises(subscriptions.WebhookConfigError, match="cannot read"):
        subscriptions.load_subscriptions("", str(tmp_path / "missing.json"))


@pytest.mark.parametrize("raw,message", [
    ("[{", "not valid JSON"),
    ('{"id": "x"}', "JSON list"),
    (json.dumps([1]), r"\[0\]: must be a JSON object"),
    (json.dumps([{**GOOD[1], "url": "ftp://x"}]), "'url' must be an http"),
    (json.dumps([{**GOOD[1], "url": ""}]), "'url' must be a non-empty"),
    (json.dumps([{k: v for k, v in GOOD[1].items() if k != "secret"}]), "'secret'"),
    (json.dumps([{**GOOD[1], "secret": "whsec_***"}]), "not base64"),
    (json.dumps([{**GOOD[1], "events": ["cart.update"]}]), "'events' must be"),
    (json.dumps([{**GOOD[1], "events": []}]), "'events' must be"),
    (json.dumps([{**GOOD[1], "timeout_s": 0}]), "timeout_s"),
    (json.dumps([{**GOOD[1], "timeout_s": "5"}]), "timeout_s"),
    (json.dumps([{**GOOD[1], "urll": "x"}]), "unknown field"),
    (json.dumps([{**GOOD[1], "url": "http://h:99999/x"}]), "numeric port 1-65535"),
    (json.dumps([{**GOOD[1], "url": "http://h:abc/x"}]), "numeric port 1-65535"),
    (json.dumps([{**GOOD[1], "url": "http://h:0/x"}]), "numeric port 1-65535"),
    (json.dumps([{**GOOD[1], "url": "http://h:/x"}]), "numeric port 1-65535"),
    (json.dumps([{**GOOD[1], "url": "http://a host/x"}]), "whitespace"),
    (json.dumps([{**GOOD[1], "url": "http://h/x\n"}]), "whitespace"),
    (json.dumps([{**GOOD[1], "url": "http://user@/x"}]), "must name a host"),
    (json.dumps([{**GOOD[1], "secret": "x"}]), "at least 16 bytes"),
    (json.dumps([{**GOOD[1], "secret": "fifteen-bytes!!"}]), "at least 16 bytes"),
    (json.dumps([{**GOOD[1], "secret": "whsec_" + base64.b64encode(b"k" * 15).decode()}]),
     "at least 16 bytes"),
    (json.dumps([GOOD[1], GOOD[1]]), "duplicate subscription id"),
])
def test_bad_subscriptions_fail_clearly(raw, message):
    with pytest.raises(subscriptions.WebhookConfigError, match=message):
        subscriptions.parse_subscriptions(raw)


# --- triggers --------------------------------------------------------------------------

def ev(kind, ts, eid, **fields):
    return validate_dict({"event_id": eid, "type": kind, "customer_id": "c1", "ts": ts, **fields})


class Customer:
    """Applies events the way agents/customers.py does and collects the fired kinds."""

    def __init__(self):
        self.session = self.profile = None
        self.fired: list = []

    def send(self, event) -> list:
        s = session_state.apply_to_session(self.session, event, IDLE_MS)
        p = profile_state.apply_to_profile(self.profile, event, s)
        fired = triggers.triggered(self.session, s, self.profile, p, event, IDLE_MS)
        self.session, self.profile = s, p
        self.fired += fired
        return [k for k, _ in fired]

    def timeout(self, now_ms) -> list:
        command = validate_dict(triggers.timeout_command(self.session, now_ms))
        self.session, fired = triggers.on_session_timeout(self.session, command, IDLE_MS)
        self.fired += fired
        return [k for k, _ in fired]


def add(ts, eid, pid="p1", qty=1, price=10.0):
    return ev("cart_add", ts, eid, product_id=pid, quantity=qty, price=price)


def test_cart_updated_only_when_the_visible_cart_changes():
    c = Customer()
    assert c.send(ev("product_view", T0, "e1", product_id="p9")) == []
    assert c.send(add(T0 + 1, "e2", qty=2)) == [CART_UPDATED]
    kind, data = c.fired[-1]
    assert data["cart"][0]["quantity"] == 2 and data["cart_value"] == 20.0
    assert c.send(add(T0 + 1, "e2", qty=2)) == []  # duplicate delivery
    assert c.send(ev("search", T0 + 2, "e3", query="shoes")) == []
    assert c.send(ev("cart_remove", T0 + 3, "e4", product_id="zz")) == []  # hidden line only
    assert c.send(ev("cart_remove", T0 + 4, "e5", product_id="p1", quantity=2)) == [CART_UPDATED]
    assert c.fired[-1][1]["cart"] == [] and c.fired[-1][1]["cart_value"] == 0.0


def test_purchase_completed_once_per_order_with_profile_totals():
    c = Customer()
    c.send(add(T0, "e1", qty=2))
    items = [{"product_id": "p1", "quantity": 2, "price": 10.0}]
    order = dict(order_id="o1", items=items, total=20.0, currency="EUR")
    assert c.send(ev("purchase", T0 + 1, "e2", **order)) == [CART_UPDATED, PURCHASE]
    data = c.fired[-1][1]
    assert data["order"]["order_id"] == "o1" and data["order"]["total"] == 20.0
    assert data["profile"]["orders"] == 1 and data["profile"]["total_spent"] == 20.0
    assert c.send(ev("purchase", T0 + 1, "e2", **order)) == []          # redelivered
    assert c.send(ev("purchase", T0 + 2, "e3", **order)) == []          # same order, new event
    assert c.send(ev("purchase", T0 + 3, "e4", **{**order, "order_id": "o2"})) == [PURCHASE]
    assert c.fired[-1][1]["profile"]["orders"] == 2


def test_cart_abandoned_when_a_new_session_replaces_an_open_cart():
    c = Customer()
    c.send(add(T0, "e1"))
    later = T0 + IDLE_MS + 1
    assert c.send(ev("product_view", later, "e2", product_id="p2")) == [CART_ABANDONED]
    data = c.fired[-1][1]
    assert data["reason"] == "new_session" and data["cart"][0]["product_id"] == "p1"
    assert data["last_event_at"] == T0
    # the new session starts with an empty cart: no cart.updated for the old cart going away
    assert c.send(add(later + 1, "e3", pid="p3")) == [CART_UPDATED]


def test_no_abandoned_cart_after_a_purchase_or_for_an_empty_cart():
    c = Customer()
    c.send(ev("product_view", T0, "e1", product_id="p1"))
    assert c.send(ev("product_view", T0 + IDLE_MS + 1, "e2", product_id="p1")) == []
    c.send(add(T0 + IDLE_MS + 2, "e3"))
    c.send(add(T0 + IDLE_MS + 3, "e4", pid="p2"))
    c.send(ev("purchase", T0 + IDLE_MS + 4, "e5", order_id="o1", currency="EUR", total=10.0,
              items=[{"product_id": "p1", "quantity": 1, "price": 10.0}]))
    assert c.timeout(T0 + 3 * IDLE_MS) == []  # p2 is still in the cart, but the session bought
    assert c.send(ev("product_view", T0 + 3 * IDLE_MS, "e6", product_id="p1")) == []


def test_session_timeout_fires_once_and_the_replacement_does_not_fire_again():
    c = Customer()
    c.send(add(T0, "e1"))
    assert c.timeout(T0 + IDLE_MS) == []               # not idle yet (needs > idle)
    assert c.timeout(T0 + IDLE_MS + 1) == [CART_ABANDONED]
    assert c.fired[-1][1]["reason"] == "idle" and c.session["abandon_notified"]
    assert c.timeout(T0 + IDLE_MS + 5000) == []        # a second scan / duplicate command
    assert c.send(ev("product_view", T0 + 2 * IDLE_MS, "e2", product_id="p1")) == []
    assert [k for k, _ in c.fired].count(CART_ABANDONED) == 1
    assert session_state.view(c.session)["cart"] == []


def test_timeout_command_ignored_when_the_session_moved_on():
    c = Customer()
    c.send(add(T0, "e1"))
    command = validate_dict(triggers.timeout_command(c.session, T0 + IDLE_MS + 1))
    c.send(add(T0 + IDLE_MS, "e2", pid="p2"))         # activity before the command is handled
    assert triggers.on_session_timeout(c.session, command, IDLE_MS) == (c.session, [])
    assert triggers.on_session_timeout(None, command, IDLE_MS) == (None, [])


def test_timeout_command_is_a_valid_internal_event_with_a_stable_id():
    c = Customer()
    c.send(add(T0, "e1"))
    a = triggers.timeout_command(c.session, T0 + IDLE_MS + 1)
    b = triggers.timeout_command(c.session, T0 + IDLE_MS + 9000)
    assert a["event_id"] == b["event_id"] and validate_dict(a)["type"] == "session_timeout"


# --- outbox records --------------------------------------------------------------------

def test_delivery_requests_one_per_matching_subscription():
    subs = subscriptions.parse_subscriptions(json.dumps(GOOD))
    event = ev("purchase", T0, "e9", order_id="o1", currency="EUR", total=1.0,
               items=[{"product_id": "p1", "quantity": 1, "price": 1.0}])
    fired = [(CART_UPDATED, {"cart": []}), (PURCHASE, {"order": {"order_id": "o1"}})]
    out = formats.delivery_requests(subs, event, fired, now_ms=T0 + 5, source=[3, 41])
    records = [orjson.loads(v) for _, v in out]
    assert {k for k, _ in out} == {b"c1"}
    assert [(r["kind"], r["subscription_id"]) for r in records] == [(CART_UPDATED, "bi"), (PURCHASE, "crm")]
    assert records[1]["webhook_id"] == formats.webhook_id("e9", "crm", PURCHASE)
    assert records[1]["attempts"] == 0 and records[1]["created_at"] == T0 + 5
    assert all(r["source"] == [3, 41] for r in records)
    assert formats.delivery_requests(subs, event, fired, T0 + 99, [3, 41])[1][1] != out[1][1]
    body = orjson.loads(formats.body(records[1]))
    assert body == {"type": PURCHASE, "timestamp": "2023-11-14T22:13:20.000+00:00",
                    "data": {"order": {"order_id": "o1"}}}


def test_dlq_entry_and_redrive_reset_attempts():
    record = {"webhook_id": "msg_1", "subscription_id": "crm", "kind": PURCHASE,
              "customer_id": "c1", "attempts": 3, "not_before": 5, "data": {}}
    entry = orjson.loads(formats.dlq_entry(record, "HTTP 500", 500, 6, T0))
    assert entry["error"] == "HTTP 500" and entry["attempts"] == 6 and entry["status"] == 500
    assert entry["subscription_id"] == "crm" and entry["delivery"] == record
    again = formats.redriven(entry, T0 + 1)
    assert again["attempts"] == 0 and "not_before" not in again
    assert again["webhook_id"] == "msg_1" and again["redriven_at"] == T0 + 1
