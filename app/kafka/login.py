"""How every Kafka client of Persona logs in to the cluster: the worker (Faust), its bulk
restore, and the command-line tools (replay, redrive, reconcile, shadow).

Managed Kafka (MSK, Confluent Cloud, Aiven, Redpanda Cloud) takes SASL over TLS; a private
cluster may take TLS alone, with or without client certificates. The variables sit beside
``KAFKA_BROKER_URL`` and keep Kafka's own words:

- ``KAFKA_SECURITY_PROTOCOL``: ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``;
- ``KAFKA_SASL_MECHANISM``: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` (SASL only);
- ``KAFKA_SASL_USERNAME``, and ``KAFKA_SASL_PASSWORD`` or ``KAFKA_SASL_PASSWORD_FILE``;
- ``KAFKA_SSL_CAFILE`` (default: the system's CAs), ``KAFKA_SSL_CERTFILE`` and
  ``KAFKA_SSL_KEYFILE`` (a client certificate, both or neither).

Parsed once by ``app.settings`` (a bad value stops the process naming the variable); the
password is never printed (``repr`` hides it).
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Mapping

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaAuthError(ValueError):
    """A bad KAFKA_* setting; the message starts with the variable's name."""


@dataclass(frozen=True)
class KafkaAuth:
    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (server verified, host name checked), None without TLS."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cafile or None)
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile or None)
        return ctx

    def aiokafka(self) -> dict:
        """Keyword arguments of an aiokafka producer, consumer or admin client."""
        if self.protocol == "PLAINTEXT":
            return {}
        out: dict = {"security_protocol": self.protocol, "ssl_context": self.ssl_context()}
        if self.sasl:
            out.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                       sasl_plain_password=self.password)
        return out

    def faust_credentials(self):
        """Faust's ``broker_credentials`` (None for PLAINTEXT)."""
        import faust
        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.mechanism,
                                         ssl_context=self.ssl_context())
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def _file(env: Mapping[str, str], name: str) -> str:
    path = env.get(name, "").strip()
    if path and not os.path.isfile(path):
        raise KafkaAuthError(f"{name}: no such file {path!r}")
    return path


def kafka_auth(env: Mapping[str, str]) -> KafkaAuth:
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol not in PROTOCOLS:
        raise KafkaAuthError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                             f"got {env.get('KAFKA_SECURITY_PROTOCOL')!r}")
    mechanism = env.get("KAFKA_SASL_MECHANISM", "").strip().upper()
    username = env.get("KAFKA_SASL_USERNAME", "")
    password = env.get("KAFKA_SASL_PASSWORD", "")
    password_file = _file(env, "KAFKA_SASL_PASSWORD_FILE")
    if password and password_file:
        raise KafkaAuthError("KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; "
                             "set one")
    if password_file:
        with open(password_file) as f:
            password = f.read().rstrip("\r\n")
    auth = KafkaAuth(protocol, mechanism, username, password, _file(env, "KAFKA_SSL_CAFILE"),
                     _file(env, "KAFKA_SSL_CERTFILE"), _file(env, "KAFKA_SSL_KEYFILE"))
    if auth.sasl:
        if mechanism not in MECHANISMS:
            raise KafkaAuthError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)} "
                                 f"with {protocol}, got {mechanism or 'nothing'!r}")
        if not username:
            raise KafkaAuthError(f"KAFKA_SASL_USERNAME is needed with {protocol}")
        if not password:
            raise KafkaAuthError(f"KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is needed "
                                 f"with {protocol}")
    else:
        for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                     "KAFKA_SASL_PASSWORD_FILE"):
            if env.get(name, "").strip():
                raise KafkaAuthError(f"{name} is set but KAFKA_SECURITY_PROTOCOL={protocol} "
                                     "does not use SASL")
    if not auth.tls:
        for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
            if env.get(name, "").strip():
                raise KafkaAuthError(f"{name} is set but KAFKA_SECURITY_PROTOCOL={protocol} "
                                     "does not use TLS")
    if bool(auth.certfile) != bool(auth.keyfile) and not (auth.certfile and not auth.keyfile):
        raise KafkaAuthError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE")
    try:
        auth.ssl_context()
    except (ssl.SSLError, ValueError, OSError) as exc:
        which = "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE" if auth.certfile else "KAFKA_SSL_CAFILE"
        raise KafkaAuthError(f"{which}: not usable PEM ({exc})") from None
    return auth


async def login_problem(bootstrap: str, auth: KafkaAuth, timeout: float = 30.0) -> str | None:
    """None if a metadata round trip with ``auth`` succeeds within ``timeout``, else one line
    saying why (the broker's refusal, or the TLS error), never the password."""
    import asyncio
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep = Keep(logging.ERROR)
    logging.getLogger("aiokafka").addHandler(keep)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                **auth.aiokafka())
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return None
    except Exception as exc:  # what a worker would hang on: say it once, plainly
        cause = seen[-1] if seen else f"{exc.__class__.__name__}: {exc}"
        who = (f", {auth.mechanism} as {auth.username!r}" if auth.sasl else "")
        return (f"cannot log in to Kafka at {bootstrap} (KAFKA_SECURITY_PROTOCOL="
                f"{auth.protocol}{who}): {cause}")
    finally:
        logging.getLogger("aiokafka").removeHandler(keep)
        try:
            await admin.close()
        except Exception:  # noqa: S110 - closing a client that never connected
            pass
