"""Token-bucket rate limits: settings parsing and the buckets. Pure: no faust, aiohttp,
settings or clock here (``now`` is passed in); ``web.ratelimit`` wires them to requests.

- ``Rate(per_s, burst)``: a bucket holds up to ``burst`` tokens and refills ``per_s`` a
  second. Written ``<n>/s[:<burst>]`` or ``<n>/m[:<burst>]`` (``/m``: per minute); burst
  defaults to max(1, n per second); ``0`` or empty = no limit.
- ``Buckets.take(key, now, cost)``: admitted (returns 0.0, tokens taken) when the bucket
  holds at least ``min(cost, burst)`` tokens; the whole ``cost`` is taken, so the bucket may
  go below zero (a request bigger than the burst is not refused for ever; the next ones wait
  until the debt is refilled: the average rate holds). Else the seconds to wait.
- Memory is bounded: at most ``max_keys`` buckets, least recently used first out, and each
  call also drops up to two idle buckets (idle long enough to be full again: dropping one
  changes nothing). Every call is O(1).
- ``client_address``: the caller's address, X-Forwarded-For only through trusted hops.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

MAX_KEYS = 100_000
VARIABLES = {"ingest": "PERSONA_RATE_INGEST", "read": "PERSONA_RATE_READ",
             "publishable": "PERSONA_RATE_PUBLISHABLE"}
HOPS = "PERSONA_TRUSTED_PROXY_HOPS"
#: Beyond these a "limit" limits nothing: a typo (an extra digit or three), not a choice.
RATE_MAX, BURST_MAX = 1e6, 1e7


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: float

    @property
    def full_after_s(self) -> float:
        """Seconds an empty bucket needs to be full again."""
        return self.burst / self.per_s


@dataclass(frozen=True)
class RateConfig:
    """The limits of one worker; None = that kind is not limited."""
    ingest: Rate | None = None
    read: Rate | None = None
    publishable: Rate | None = None
    trusted_hops: int = 0


def parse_rate(raw: str, name: str) -> Rate | None:
    """``<n>/s[:<burst>]`` or ``<n>/m[:<burst>]``; ``0``/empty -> None; ValueError naming
    ``name`` otherwise."""
    text = raw.strip().lower()
    if text in ("", "0", "off"):
        return None
    bad = ValueError(f"{name} must be '<rate>/s[:<burst>]' or '<rate>/m[:<burst>]' "
                     f"(e.g. 100/s:200), or 0 for no limit; got {raw!r}")
    spec, _, burst_text = text.partition(":")
    count, slash, unit = spec.partition("/")
    if not slash or unit not in ("s", "m"):
        raise bad
    try:
        per_s = float(count) / (60.0 if unit == "m" else 1.0)
        if not (math.isfinite(per_s) and 0 < per_s <= RATE_MAX):
            raise ValueError(f"{name}: the rate must be a number > 0 and at most "
                             f"{RATE_MAX:g}/s (0 alone = off), got {raw!r}")
        burst = float(burst_text) if burst_text else max(1.0, math.ceil(per_s))
    except ValueError as exc:
        raise (exc if str(exc).startswith(name) else bad) from None
    if not (math.isfinite(burst) and 1 <= burst <= BURST_MAX):
        raise ValueError(f"{name}: the burst must be a number from 1 to {BURST_MAX:g}, "
                         f"got {raw!r}")
    return Rate(per_s, burst)


def rate_config(env: Mapping[str, str]) -> RateConfig:
    """The PERSONA_RATE_* settings and PERSONA_TRUSTED_PROXY_HOPS; ValueError starting with
    the variable's name when one is invalid."""
    rates = {kind: parse_rate(env.get(var, ""), var) for kind, var in VARIABLES.items()}
    raw = env.get(HOPS, "").strip() or "0"
    if not (raw.isascii() and raw.isdigit() and int(raw) <= 16):
        raise ValueError(f"{HOPS} must be an integer from 0 to 16, got {raw!r}")
    return RateConfig(trusted_hops=int(raw), **rates)


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def client_address(remote: str | None, forwarded_for: Sequence[str], trusted_hops: int) -> str:
    """The client's address: ``remote`` (the TCP peer) unless ``trusted_hops`` proxies are
    in front of the workers; then the address that many hops back in ``X-Forwarded-For``
    (each proxy appends the address it received from; the entries left of that are the
    client's to write, so they are never believed)."""
    chain = [a.strip() for h in forwarded_for for a in h.split(",") if a.strip()]
    chain.append(remote or "")
    return chain[max(0, len(chain) - 1 - trusted_hops)] if trusted_hops else chain[-1]


class Buckets:
    """Token buckets of one rate, one per key; see the module doc."""

    def __init__(self, rate: Rate, max_keys: int = MAX_KEYS):
        self.rate, self.max_keys = rate, max_keys
        self._buckets: OrderedDict[Hashable, list] = OrderedDict()  # key -> [tokens, at]

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: Hashable, now: float) -> list:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.rate.burst, now]
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket[1])  # a clock going back refills nothing
            bucket[0] = min(self.rate.burst, bucket[0] + elapsed * self.rate.per_s)
            bucket[1] = max(bucket[1], now)
        return bucket

    def _drop_idle(self, now: float) -> None:
        for _ in range(2):
            oldest = next(iter(self._buckets.items()), None)
            if oldest is None:
                return
            key, (tokens, at) = oldest
            if tokens + (now - at) * self.rate.per_s < self.rate.burst:
                return
            del self._buckets[key]

    def wait(self, key: Hashable, now: float, cost: float = 1.0, paid: float = 0.0) -> float:
        """Seconds until ``key``'s bucket admits ``cost`` of which ``paid`` was taken before
        (it must hold ``min(cost, burst) - paid`` tokens); 0.0: now. Takes nothing."""
        self._drop_idle(now)
        bucket = self._tokens(key, now)
        short = min(cost, self.rate.burst) - paid - bucket[0]
        return short / self.rate.per_s if short > 0 else 0.0

    def take(self, key: Hashable, now: float, cost: float = 1.0, paid: float = 0.0) -> float:
        """0.0 and ``cost - paid`` tokens taken if admitted, else the seconds to wait
        (nothing taken). ``paid``: what an earlier ``take`` for the same request took."""
        wait = self.wait(key, now, cost, paid)
        if wait == 0.0:
            self._buckets[key][0] -= cost - paid
        return wait
