"""app.settings: one door, every mistake refused at start with the variable's name.

A real worker process refusing to start is tests/e2e/test_misconfigured_worker.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from app.auth.apikeys import digest
from app.settings import ConfigError, load, load_or_exit

GOOD_HOOK = {"id": "crm", "url": "https://crm.example/hooks", "secret": "s3cret-s3cret-s3cret",
             "events": ["purchase.completed"]}


def test_defaults_load_and_keys_are_parsed_to_digests_only():
    s = load({"PERSONA_API_KEYS": "k1-0123456789abcdef:read|ingest,sha256:" + hashlib.sha256(b"k2").hexdigest()
              + ":admin"})
    assert s.api_keys == ((digest("k1-0123456789abcdef"), frozenset({"read", "ingest"})),
                          (digest("k2"), frozenset({"admin"})))
    assert "k1-0123456789abcdef" not in repr(s.api_keys)
    assert s.webhooks == () and s.partitions == 8 and s.local_broker_compat is True
    assert load({"KAFKA_BROKER_URL": "kafka://k:9092"}).local_broker_compat is False


def test_fetch_wait_is_short_on_the_bundled_broker_and_faust_s_elsewhere():
    assert load({}).fetch_max_wait_ms == 100
    assert load({"KAFKA_BROKER_URL": "kafka://k:9092"}).fetch_max_wait_ms == 250
    assert load({"KAFKA_BROKER_URL": "kafka://k:9092",
                 "PERSONA_FETCH_MAX_WAIT_MS": "250"}).fetch_max_wait_ms == 250


def test_fetch_minimum_is_64k_on_the_bundled_broker_and_kafka_s_elsewhere():
    assert load({}).fetch_min_bytes == 65536
    assert load({"KAFKA_BROKER_URL": "kafka://k:9092"}).fetch_min_bytes == 1
    assert load({"PERSONA_FETCH_MIN_BYTES": "1"}).fetch_min_bytes == 1
    with pytest.raises(ConfigError, match="PERSONA_FETCH_MIN_BYTES"):
        load({"PERSONA_FETCH_MIN_BYTES": "0"})


def test_failpoints_are_off_by_default_and_known_names_arm():
    assert load({}).failpoints == ()
    assert load({"PERSONA_FAILPOINT": "flush.after_changelog"}).failpoints == (
        "flush.after_changelog",)


@pytest.mark.parametrize("env, variable, problem", [
    ({"PERSONA_API_KEYS": "nocolonkey"}, "PERSONA_API_KEYS", "must be <key>:<scope>"),
    ({"PERSONA_API_KEYS": "k:write"}, "PERSONA_API_KEYS", "unknown scopes ['write']"),
    ({"PERSONA_API_KEYS": "k:"}, "PERSONA_API_KEYS", "unknown scopes"),
    ({"PERSONA_API_KEYS": "sha256:abc:read"}, "PERSONA_API_KEYS", "needs 64 hex digits"),
    ({"PERSONA_API_KEYS_FILE": "/nonexistent/keys"}, "PERSONA_API_KEYS_FILE", "cannot read"),
    ({"PERSONA_WEBHOOKS": "[{"}, "PERSONA_WEBHOOKS", "not valid JSON"),
    ({"PERSONA_WEBHOOKS": json.dumps([{**GOOD_HOOK, "url": "ftp://x"}])}, "PERSONA_WEBHOOKS[0]",
     "'url' must be an http(s) URL"),
    ({"PERSONA_WEBHOOKS": json.dumps([GOOD_HOOK]), "PERSONA_WEBHOOKS_FILE": "/x.json"},
     "set PERSONA_WEBHOOKS or PERSONA_WEBHOOKS_FILE", "not both"),
    ({"PERSONA_WEBHOOKS_FILE": "/nonexistent.json"}, "PERSONA_WEBHOOKS_FILE", "cannot read"),
    ({"PERSONA_TLS_CERT": "/nonexistent/cert.pem"}, "PERSONA_TLS_CERT", "no such file"),
    ({"PERSONA_TLS_KEY": "/k.pem"}, "PERSONA_TLS_KEY", "PERSONA_TLS_CERT is not"),
    ({"PERSONA_TLS_CA": "/nonexistent/ca.pem"}, "PERSONA_TLS_CA", "no such file"),
    ({"PERSONA_PARTITIONS": "eight"}, "PERSONA_PARTITIONS", "must be a number"),
    ({"PERSONA_PARTITIONS": "0"}, "PERSONA_PARTITIONS", "between 1 and"),
    ({"PORT": "70000"}, "PORT", "between 1 and 65535"),
    ({"PERSONA_FETCH_MAX_WAIT_MS": "0"}, "PERSONA_FETCH_MAX_WAIT_MS", "between 1 and 60000"),
    ({"PERSONA_BATCH_WITHIN_S": "-1"}, "PERSONA_BATCH_WITHIN_S", "must be a number between 0 and 10"),
    ({"PERSONA_WEBHOOK_BACKOFF_S": "nan"}, "PERSONA_WEBHOOK_BACKOFF_S", "finite number"),
    ({"PERSONA_WEBHOOK_MAX_ATTEMPTS": "0"}, "PERSONA_WEBHOOK_MAX_ATTEMPTS", "between 1"),
    ({"PERSONA_LOCAL_BROKER_COMPAT": "maybe"}, "PERSONA_LOCAL_BROKER_COMPAT", "boolean"),
    ({"PERSONA_ALLOW_UNTESTED_VERSIONS": "sure"}, "PERSONA_ALLOW_UNTESTED_VERSIONS", "boolean"),
    ({"PERSONA_FAILPOINT": "flush.sometime"}, "PERSONA_FAILPOINT", "unknown point"),
    ({"PERSONA_METRICS": "maybe"}, "PERSONA_METRICS", "must be on or off"),
])
def test_each_kind_of_mistake_names_the_variable(env, variable, problem):
    with pytest.raises(ConfigError) as info:
        load(env)
    message = str(info.value)
    assert message.startswith(variable), message
    assert problem in message


def test_a_file_that_is_not_pem_is_refused(tmp_path):
    junk = tmp_path / "cert.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="^PERSONA_TLS_CERT/PERSONA_TLS_KEY: not a usable PEM"):
        load({"PERSONA_TLS_CERT": str(junk)})
    with pytest.raises(ConfigError, match="^PERSONA_TLS_CA: not a usable PEM"):
        load({"PERSONA_TLS_CA": str(junk)})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_a_real_certificate_is_accepted(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    s = load({"PERSONA_TLS_CERT": str(cert), "PERSONA_TLS_KEY": str(key),
              "PERSONA_TLS_CA": str(cert)})
    assert (s.tls_cert, s.tls_key, s.tls_ca) == (str(cert), str(key), str(cert))


def test_key_file_and_subscriptions_file_are_read_once_at_load(tmp_path):
    keys, hooks = tmp_path / "keys", tmp_path / "hooks.json"
    keys.write_text("# comment\nfile-key-0123456789abcdef:read\n")
    hooks.write_text(json.dumps([GOOD_HOOK]))
    s = load({"PERSONA_API_KEYS": "env-key-0123456789abcdef:admin", "PERSONA_API_KEYS_FILE": str(keys),
              "PERSONA_WEBHOOKS_FILE": str(hooks)})
    assert [d for d, _ in s.api_keys] == [digest("env-key-0123456789abcdef"), digest("file-key-0123456789abcdef")]
    assert [h.id for h in s.webhooks] == ["crm"]


def test_load_or_exit_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        load_or_exit({"PERSONA_API_KEYS": "nocolonkey"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("persona: invalid setting: PERSONA_API_KEYS")
    assert "nocolonkey" not in err  # an entry holds a secret: named by position only


def test_group_timers_default_to_10s_sessions_on_every_broker_and_are_checked():
    for env in ({}, {"KAFKA_BROKER_URL": "kafka://k:9092"}):
        s = load(env)
        assert (s.group_session_timeout_s, s.group_heartbeat_s, s.group_rebalance_timeout_s) == (
            10.0, 1.0, 10.0)
    s = load({"PERSONA_GROUP_SESSION_TIMEOUT_S": "45", "PERSONA_GROUP_REBALANCE_TIMEOUT_S": "60"})
    assert (s.group_session_timeout_s, s.group_heartbeat_s, s.group_rebalance_timeout_s) == (
        45.0, 1.0, 60.0)
    bad = [({"PERSONA_GROUP_SESSION_TIMEOUT_S": "5"}, "PERSONA_GROUP_SESSION_TIMEOUT_S"),
           ({"PERSONA_GROUP_SESSION_TIMEOUT_S": "inf"}, "PERSONA_GROUP_SESSION_TIMEOUT_S"),
           ({"PERSONA_GROUP_HEARTBEAT_S": "4"}, "PERSONA_GROUP_HEARTBEAT_S"),
           ({"PERSONA_GROUP_REBALANCE_TIMEOUT_S": "0"}, "PERSONA_GROUP_REBALANCE_TIMEOUT_S")]
    for env, name in bad:
        with pytest.raises(ConfigError, match=name):
            load(env)


def test_a_worker_id_turns_on_static_membership_and_is_checked():
    from app.main import faust_options

    kafka = {"KAFKA_BROKER_URL": "kafka://k:9092"}
    assert load({}).worker_id == "" and "consumer_group_instance_id" not in faust_options(load({}))
    s = load({**kafka, "PERSONA_WORKER_ID": "persona-2.eu_west"})
    assert faust_options(s)["consumer_group_instance_id"] == "persona-2.eu_west"
    for bad in ("has space", "x" * 65, "slash/no"):
        with pytest.raises(ConfigError, match="PERSONA_WORKER_ID"):
            load({**kafka, "PERSONA_WORKER_ID": bad})
    with pytest.raises(ConfigError, match="PERSONA_WORKER_ID: the bundled broker"):
        load({"PERSONA_WORKER_ID": "w1"})  # no KAFKA_BROKER_URL: the bundled broker


def test_the_demo_key_must_be_a_configured_publishable_key():
    ok = load({"PERSONA_API_KEYS": "pk-demo-0123456789abcdef:publishable,adm-0123456789abcdef:admin", "PERSONA_DEMO_KEY": "pk-demo-0123456789abcdef"})
    assert ok.demo_key == "pk-demo-0123456789abcdef"
    assert load({"PERSONA_API_KEYS": "ing-0123456789abcdef:ingest", "PERSONA_DEMO_KEY": "ing-0123456789abcdef"}).demo_key == "ing-0123456789abcdef"
    for keys, want in (("adm-0123456789abcdef:admin", "may only ingest"), ("rd-0123456789abcdef:read|ingest", "may only ingest"),
                       ("other-0123456789abcdef:publishable", "not one of the configured")):
        demo = keys.split(":")[0] if want != "not one of the configured" else "nowhere-0123456789abcdef"
        with pytest.raises(ConfigError, match=f"PERSONA_DEMO_KEY: .*{want}"):
            load({"PERSONA_API_KEYS": keys, "PERSONA_DEMO_KEY": demo})


def test_a_misspelled_persona_variable_stops_the_worker_naming_the_nearest_one():
    with pytest.raises(ConfigError, match=r"PERSONA_IDENTITY_SECERT: not a Persona setting "
                                          r"\(did you mean PERSONA_IDENTITY_SECRET\?\)"):
        load({"PERSONA_IDENTITY_SECERT": "x" * 32})
    with pytest.raises(ConfigError, match=r"^PERSONA_QQQQ: not a Persona setting;"):
        load({"PERSONA_QQQQ": "1"})
    assert load({"PERSONA_ADMIN_KEY": "k", "PERSONA_READ_KEY": "k", "OTHER_THING": "1"})


def test_every_persona_variable_in_the_code_is_known_and_documented():
    import re
    from pathlib import Path

    from app.config.env import KNOWN_VARIABLES
    root = Path(__file__).resolve().parents[2]
    used = set()
    for folder in ("app", "agents", "tables", "web"):
        for path in (root / folder).rglob("*.py"):
            used |= set(re.findall(r"PERSONA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    used -= {"PERSONA_SCOPES", "PERSONA_IDENTITY_SECERT"}  # a constant; the example typo
    assert used - KNOWN_VARIABLES == set()
    documented = "".join(p.read_text() for p in [root / "README.md", *(root / "docs").glob("*.md")])
    assert sorted(v for v in KNOWN_VARIABLES if v not in documented) == []


@pytest.mark.parametrize("env,name", [
    ({"PERSONA_INGEST_TIMEOUT_S": "inf"}, "PERSONA_INGEST_TIMEOUT_S"),
    ({"PERSONA_INGEST_TIMEOUT_S": "nan"}, "PERSONA_INGEST_TIMEOUT_S"),
    ({"PERSONA_INGEST_TIMEOUT_S": "301"}, "PERSONA_INGEST_TIMEOUT_S"),
    ({"PERSONA_FLUSH_INTERVAL_S": "1e9"}, "PERSONA_FLUSH_INTERVAL_S"),
    ({"PERSONA_WEBHOOK_BACKOFF_MAX_S": "1e12"}, "PERSONA_WEBHOOK_BACKOFF_MAX_S"),
    ({"PERSONA_INGEST_MAX_EVENTS": "1000000000"}, "PERSONA_INGEST_MAX_EVENTS"),
    ({"PERSONA_RATE_READ": "1e300/s"}, "PERSONA_RATE_READ"),
    ({"PERSONA_RATE_READ": "10/s:1e300"}, "PERSONA_RATE_READ"),
])
def test_numbers_are_finite_and_sane(env, name):
    with pytest.raises(ConfigError, match=name):
        load(env)


def test_a_key_listed_twice_is_refused_whatever_its_scopes(tmp_path):
    for spec in ("k1-0123456789abcdef:read,k1-0123456789abcdef:admin", "k1-0123456789abcdef:read,k1-0123456789abcdef:read"):
        with pytest.raises(ConfigError, match=r"PERSONA_API_KEYS: the same key is listed twice "
                                              r"\(entries #1 and #2"):
            load({"PERSONA_API_KEYS": spec})
    digest_entry = "sha256:" + hashlib.sha256(b"k1-0123456789abcdef").hexdigest()
    with pytest.raises(ConfigError, match="listed twice"):
        load({"PERSONA_API_KEYS": f"k1-0123456789abcdef:read,{digest_entry}:admin"})
    keys = tmp_path / "keys"
    keys.write_text("k1-0123456789abcdef:admin\n")
    with pytest.raises(ConfigError, match="#1 and #2"):
        load({"PERSONA_API_KEYS": "k1-0123456789abcdef:read", "PERSONA_API_KEYS_FILE": str(keys)})


def test_api_keys_need_16_characters_but_digests_are_taken_as_given():
    with pytest.raises(ConfigError, match=r"PERSONA_API_KEYS: entry #2: a key needs at least 16 "
                                          r"characters \(got 1\)"):
        load({"PERSONA_API_KEYS": "a-long-enough-key-1:read,k:admin"})
    short_digest = "sha256:" + hashlib.sha256(b"k").hexdigest()
    assert load({"PERSONA_API_KEYS": f"{short_digest}:read"}).api_keys


def test_the_bind_address_defaults_to_every_address_and_is_faust_web_bind():
    from app.main import faust_options
    s = load({})
    assert (s.web_bind, s.web_host) == ("0.0.0.0", "127.0.0.1")
    s = load({"PERSONA_WEB_BIND": "10.0.0.5", "PERSONA_WEB_HOST": "worker-2.internal"})
    opts = faust_options(s)
    assert (opts["web_bind"], opts["web_host"]) == ("10.0.0.5", "worker-2.internal")
