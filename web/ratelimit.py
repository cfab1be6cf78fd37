"""Rate limits of this worker's HTTP API: the buckets of ``app.auth.ratelimit`` applied to requests.

README.md, "Rate limits", has the why; in short:

- ``read`` (PERSONA_RATE_READ): one token per read request, per principal (API key digest,
  or JWT issuer + subject). Checked by ``web.auth.require`` after authentication.
- ``ingest`` (PERSONA_RATE_INGEST): per principal, in events: a request costs
  ``max(1, items in it)``: one token is taken before the body is read (so malformed or
  refused requests cost one too), the rest once the body is decoded.
- ``publishable`` (PERSONA_RATE_PUBLISHABLE): a publishable key's ingest requests are also
  limited per key and client address (``app.auth.ratelimit.client_address``; X-Forwarded-For
  only through PERSONA_TRUSTED_PROXY_HOPS), in events like ``ingest``, and count against
  the key's ``ingest`` bucket as well.
- Over a limit: 429, ``Retry-After`` (whole seconds, rounded up) and a JSON body; nothing
  taken by that check. Counted in ``persona_rate_limited_total{route,kind}``.

Buckets live in this worker's memory: N workers allow N times the rate. A read forwarded to
the owner is limited there too (the forwarded marker is not authenticated, so it cannot
exempt anything): it costs a token at both workers.
"""
from __future__ import annotations

import time

from app.auth.apikeys import PUBLISHABLE
from app.auth.ratelimit import Buckets, client_address, retry_after_header
from app.observability import metrics
from app.settings import settings

PRINCIPAL_KEY = "persona.principal"
RATES = settings.rates
BUCKETS = {kind: Buckets(rate) for kind in ("ingest", "read", "publishable")
           if (rate := getattr(RATES, kind)) is not None}


def refusal(request, kind: str, wait: float) -> tuple[dict, dict]:
    """``(body, headers)`` of a 429; counts it."""
    metrics.RATE_LIMITED.labels(metrics.route_template(request), kind).inc()
    after = retry_after_header(wait)
    return ({"error": "rate limited", "limit": kind, "retry_after": int(after),
             "detail": f"over this worker's {kind} rate limit for this key; retry after "
                       f"{after} s"}, {"Retry-After": after})


def _ingest_buckets(request) -> list:
    """``[(kind, buckets, key)]`` that an ingest request counts against."""
    principal = request.get(PRINCIPAL_KEY)
    out = []
    if "ingest" in BUCKETS:
        out.append(("ingest", BUCKETS["ingest"], principal))
    if "publishable" in BUCKETS and PUBLISHABLE in request.get("persona.scopes", ()):
        address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                                 RATES.trusted_hops)
        out.append(("publishable", BUCKETS["publishable"], (principal, address)))
    return out


def charge(request, targets: list, cost: float, paid: float = 0.0,
           now: float | None = None) -> tuple[dict, dict] | None:
    """Take ``cost - paid`` from every bucket in ``targets`` if all admit it
    (``Buckets.take``), else the 429 of the one that waits longest (nothing taken)."""
    now = time.monotonic() if now is None else now
    waits = [(buckets.wait(key, now, cost, paid), kind) for kind, buckets, key in targets]
    wait, kind = max(waits, default=(0.0, ""))
    if wait > 0:
        return refusal(request, kind, wait)
    for _, buckets, key in targets:
        buckets.take(key, now, cost, paid)
    return None


def admit(scope: str, request) -> tuple[dict, dict] | None:
    """After authentication, before the body is read: a read or ingest request takes one
    token from each of its buckets, or gets the 429. None = go on."""
    if scope == "read" and "read" in BUCKETS:
        return charge(request, [("read", BUCKETS["read"], request.get(PRINCIPAL_KEY))], 1)
    if scope == "ingest":
        return charge(request, _ingest_buckets(request), 1)
    return None


def charge_ingest(request, items: int) -> tuple[dict, dict] | None:
    """Once the body is decoded: the rest of ``max(1, items)`` tokens (``admit`` took one),
    or the 429; a request refused here keeps the one token it paid."""
    if items <= 1:
        return None
    return charge(request, _ingest_buckets(request), items, paid=1)
