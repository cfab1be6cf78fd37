"""KAFKA_* login settings (app/kafka/login.py): each mistake names its variable; the password
never shows."""
from __future__ import annotations

import pytest

from app.kafka.login import KafkaAuthError, kafka_auth
from app.settings import ConfigError, load

SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw-0123456789"}


def test_plaintext_by_default_and_sasl_ssl_options():
    assert kafka_auth({}).aiokafka() == {}
    auth = kafka_auth(SASL)
    opts = auth.aiokafka()
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "svc" and opts["ssl_context"] is not None
    assert "pw-0123456789" not in repr(auth) and "pw-0123456789" not in repr(load(SASL))
    assert kafka_auth({"KAFKA_SECURITY_PROTOCOL": "ssl"}).aiokafka()["security_protocol"] == "SSL"
    assert kafka_auth({**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}).ssl_context() is None


def test_the_password_may_come_from_a_file(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from-file-0123\n")
    env = {**SASL, "KAFKA_SASL_PASSWORD": "", "KAFKA_SASL_PASSWORD_FILE": str(f)}
    assert kafka_auth(env).password == "from-file-0123"


@pytest.mark.parametrize("env,name", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({**SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ({**SASL, "KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME"),
    ({**SASL, "KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD"),
    ({**SASL, "KAFKA_SASL_PASSWORD_FILE": "/nonexistent"}, "KAFKA_SASL_PASSWORD_FILE"),
    ({**SASL, "KAFKA_SSL_CAFILE": "/nonexistent.pem"}, "KAFKA_SSL_CAFILE"),
    ({"KAFKA_SASL_USERNAME": "svc"}, "KAFKA_SASL_USERNAME"),
    ({"KAFKA_SSL_CAFILE": __file__}, "KAFKA_SSL_CAFILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": __file__}, "KAFKA_SSL_CAFILE"),
])
def test_each_mistake_names_its_variable(env, name):
    with pytest.raises(KafkaAuthError, match=f"^{name}"):
        kafka_auth(env)
    with pytest.raises(ConfigError, match=name):
        load(env)
