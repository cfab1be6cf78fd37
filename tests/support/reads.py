"""Concurrent lookups against several workers, every answer kept and checked, and the
figures drawn from them (the longest 503 window, stale reads, latency percentiles).

``Reads`` runs ``per_host`` loops per worker URL in one asyncio thread; each loop reads a
random customer's profile, records ``Answer(sent, took, host, customer, status, ok)`` and
checks a 200 at once against ``truth`` (the profiles after each prefix of that customer's
events: ``tests.support.stream.truths``): anything else is a violation, as is a 404 for a
customer that already had a value, or any status but 200, 404 and 503.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

import aiohttp
import orjson


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic
    took: float
    host: str
    customer: str
    status: int  # 0: no HTTP answer (timeout, refused)


class Reads(threading.Thread):
    def __init__(self, urls: dict[str, str], key: str, customers: list[str], truth: dict,
                 per_host: int = 3, timeout: float = 15.0, pause: float = 0.02):
        super().__init__(daemon=True)
        self.urls, self.key, self.customers, self.truth = urls, key, customers, truth
        self.per_host, self.timeout, self.pause = per_host, timeout, pause
        self.answers: list[Answer] = []
        self.violations: list[tuple] = []
        self.seen: set[str] = set()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            loops = [self._loop(session, host, random.Random(f"{host}-{i}"))
                     for host in self.urls for i in range(self.per_host)]
            await asyncio.gather(*loops)

    async def _loop(self, session, host: str, rnd: random.Random) -> None:
        base = self.urls[host]
        while not self.stop_flag.is_set():
            cid = rnd.choice(self.customers)
            sent = time.monotonic()
            try:
                async with session.get(f"{base}/v1/customers/{cid}/profile",
                                       timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                    status, body = r.status, await r.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status, body = 0, b""
            self.answers.append(Answer(sent, time.monotonic() - sent, host, cid, status))
            self._check(host, cid, status, body)
            await asyncio.sleep(self.pause)

    def _check(self, host: str, cid: str, status: int, body: bytes) -> None:
        if status == 200:
            view = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
            if view not in self.truth[cid]:
                self.violations.append(("wrong value", host, cid, body[:300]))
            self.seen.add(cid)
        elif status == 404:
            if cid in self.seen:
                self.violations.append(("404 after a value", host, cid))
        elif status not in (503, 0):
            self.violations.append((f"status {status}", host, cid, body[:300]))

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(self.timeout + 5)


def longest_503_window(answers: list[Answer], skip=lambda a: False) -> float:
    """Per customer, the longest time from a 503 to the next 200 (or the last 503) among
    ``answers`` (those ``skip`` does not drop), in seconds; the longest of all customers."""
    by_customer: dict[str, list[Answer]] = {}
    for a in sorted(answers, key=lambda a: a.sent):
        if not skip(a) and a.status in (200, 503):
            by_customer.setdefault(a.customer, []).append(a)
    longest = 0.0
    for seq in by_customer.values():
        first = last = None
        for a in seq:
            if a.status == 503:
                first = a.sent if first is None else first
                last = a.sent
            elif first is not None:
                longest = max(longest, a.sent - first)
                first = None
        if first is not None:
            longest = max(longest, last - first)
    return longest


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]
