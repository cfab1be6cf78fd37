"""HTTP load: ``wrk`` (Debian package) when installed, else an aiohttp client.

Both keep ``connections`` requests in flight for ``seconds`` against
``{base}/v1/customers/{id}/profile`` over a random sample of customer ids, and return
{"rps", "p50_ms", "p99_ms", "requests", "non_2xx", "tool"}. ``conditional`` measures the
same load with and without ``If-None-Match`` (304 vs 200), always with the aiohttp client.
"""
from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

PATH = "/v1/customers/{}/profile"

LUA = """
local ids = {%(ids)s}
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", string.format("/v1/customers/%%s/profile", ids[math.random(#ids)]))
end
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format('BENCH {"requests": %%d, "seconds": %%f, "p50_us": %%d, "p99_us": %%d, '
    .. '"non_2xx": %%d, "socket_errors": %%d}\\n', summary.requests, secs,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp"


def run(base: str, ids: list[str], key: str, seconds: float, connections: int = 16,
        seed: int = 1) -> dict:
    if tool() == "wrk":
        return _wrk(base, ids, key, seconds, connections, seed)
    return asyncio.run(_aiohttp(base, ids, key, seconds, connections, seed))


def _wrk(base, ids, key, seconds, connections, seed) -> dict:
    """One wrk thread: it keeps 16 connections busy at over 20k req/s on this machine's
    bare handler, and a second thread only takes a core from the server under test."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % {"ids": ",".join(f'"{i}"' for i in ids), "seed": seed})
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
             "-s", script, "-H", f"Authorization: Bearer {key}", base],
            capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        Path(script).unlink(missing_ok=True)
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    r = json.loads(line[len("BENCH "):])
    return {"rps": r["requests"] / r["seconds"], "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "requests": r["requests"],
            "non_2xx": r["non_2xx"] + r["socket_errors"], "tool": "wrk"}


async def _aiohttp(base, ids, key, seconds, connections, seed, etags=None, expect=None) -> dict:
    """``etags`` ({id: tag}): send each id's tag as If-None-Match; ``expect``: the one status
    that counts as good (default: any 2xx)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    bad = 0
    statuses: Counter = Counter()
    headers = {"Authorization": f"Bearer {key}"}
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        stop = time.perf_counter() + seconds

        async def client():
            nonlocal bad
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                cid = rng.choice(ids)
                try:
                    async with session.get(base + PATH.format(cid), headers=etags and {
                            "If-None-Match": etags[cid]}) as r:
                        await r.read()
                        statuses[r.status] += 1
                        bad += r.status != expect if expect else r.status >= 300
                except aiohttp.ClientError:
                    bad += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"rps": len(latencies) / elapsed, "p50_ms": pick(0.50) if latencies else None,
            "p99_ms": pick(0.99) if latencies else None, "requests": len(latencies),
            "non_2xx": bad, "statuses": dict(statuses), "tool": "aiohttp"}


async def fetch_etags(base: str, ids: list[str], key: str) -> tuple[dict, int]:
    """({id: ETag} of ids answering 200 with a tag and 304 to it, ids that did not)."""
    tags, failed = {}, 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        for cid in ids:
            async with session.get(base + PATH.format(cid)) as r:
                await r.read()
                tag = r.headers.get("ETag") if r.status == 200 else None
            if tag:
                async with session.get(base + PATH.format(cid),
                                       headers={"If-None-Match": tag}) as r:
                    await r.read()
                    if r.status == 304:
                        tags[cid] = tag
                        continue
            failed += 1
    return tags, failed


def conditional(base: str, ids: list[str], key: str, seconds: float,
                connections: int = 16) -> dict:
    """The same lookup load twice, back to back, with the aiohttp client (whatever
    ``tool()`` says, so both runs use one client): plain GETs (200 + body), then each
    id's current ETag as If-None-Match (304, no body). Non-matching answers count as
    ``non_2xx`` (for the 304 run: any status but 304)."""
    tags, failed = asyncio.run(fetch_etags(base, ids, key))
    if not tags:
        return {"ids": 0, "etag_failures": failed}
    ok = sorted(tags)
    plain = asyncio.run(_aiohttp(base, ok, key, seconds, connections, 1, expect=200))
    cond = asyncio.run(_aiohttp(base, ok, key, seconds, connections, 1, etags=tags, expect=304))
    return {"ids": len(ok), "etag_failures": failed, "200": plain, "304": cond}


def median_run(base, ids, key, seconds, repeat: int, connections: int = 16) -> dict:
    """Median by req/s of ``repeat`` runs (each run's own p50/p99 kept with it)."""
    runs = sorted((run(base, ids, key, seconds, connections, seed=i) for i in range(repeat)),
                  key=lambda r: r["rps"])
    best = dict(runs[len(runs) // 2])
    best["runs_rps"] = [round(r["rps"]) for r in runs]
    return best
