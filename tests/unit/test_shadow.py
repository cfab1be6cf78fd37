"""Shadow mode's naming and settings (app/consistency/shadow.py, PERSONA_SHADOW) and persona-shadow's pure
parts (app/cli/shadow.py: the shadow's environment, the per-field diff)."""
from __future__ import annotations

import pytest

from app.cli.shadow import fields_differing, shadow_env
from app.consistency.shadow import app_id, changelog, own_topic
from app.settings import ConfigError, load

HOOKS = '[{"id": "crm", "url": "https://crm.example/h", "secret": "shadow-test-secret-16", "events": ["cart.updated"]}]'


def test_the_live_app_keeps_its_names_and_a_shadow_gets_its_own():
    assert app_id("") == "persona" and own_topic("events-dlq", "") == "events-dlq"
    assert app_id("c1") == "persona-shadow-c1"
    assert own_topic("webhook-deliveries", "c1") == "persona-shadow-c1-webhook-deliveries"
    assert changelog("profiles") == "persona-profiles-changelog"
    assert changelog("profiles", app_id("c1")) == "persona-shadow-c1-profiles-changelog"


def test_a_shadow_sends_no_webhooks_and_serves_no_demo():
    demo = {"PERSONA_DEMO_KEY": "pk-0123456789abcdef", "PERSONA_API_KEYS": "pk-0123456789abcdef:publishable"}
    live = load({"PERSONA_WEBHOOKS": HOOKS, **demo})
    assert live.shadow == "" and len(live.webhooks) == 1 and live.demo_key == "pk-0123456789abcdef"
    s = load({"PERSONA_WEBHOOKS": HOOKS, **demo, "PERSONA_SHADOW": "c1"})
    assert s.shadow == "c1" and s.webhooks == () and s.demo_key == ""


@pytest.mark.parametrize("bad", ["a b", "x" * 49, "ü", "a.b"])
def test_a_bad_shadow_name_names_the_variable(bad):
    with pytest.raises(ConfigError, match="PERSONA_SHADOW"):
        load({"PERSONA_SHADOW": bad})


def test_the_shadow_environment_is_read_only_and_clears_outbound_settings(monkeypatch):
    monkeypatch.setenv("PERSONA_JWT_ISSUER", "https://idp")
    env = shadow_env("c1", "k-0123456789abcdef", "kafka://b:1", True)
    assert env["PERSONA_API_KEYS"] == "k-0123456789abcdef:read" and env["PERSONA_SHADOW"] == "c1"
    assert env["PERSONA_JWT_ISSUER"] == "" and env["PERSONA_WEBHOOKS"] == ""
    assert env["PERSONA_API_KEYS_FILE"] == "" and env["PERSONA_DEMO_KEY"] == ""
    assert env["KAFKA_BROKER_URL"] == "kafka://b:1" and env["PERSONA_LOCAL_BROKER_COMPAT"] == "1"
    assert load(env).api_keys[0][1] == frozenset({"read"})


def test_fields_differing_per_answer_and_field():
    a = {"profile": {"x": 1, "y": [1]}, "activity": {"cart": []}, "recommendations": None}
    b = {"profile": {"x": 1, "y": [2]}, "activity": {"cart": []}, "recommendations": {"p": 1}}
    assert fields_differing(a, b) == {"profile.y": ([1], [2]),
                                      "recommendations.(document)": ("absent", "present")}
    assert fields_differing(a, a) == {}


def test_a_checkout_without_shadow_mode_is_refused(tmp_path, capsys):
    """It would run as the live app (same group and topics): never started."""
    from app.cli.shadow import main

    (tmp_path / "app").mkdir()
    with pytest.raises(SystemExit, match="no app/consistency/shadow.py"):
        main(["--app-root", str(tmp_path), "--api-key", "k"])
