"""Plain network helpers of the local harness, for tests, the benchmark and ``make run``:
``port_open(port)``; ``http(...)`` any request (blocking, JSON decoded when it is JSON);
``get_json(url)`` a cheap GET for polling loops (status 0 when nothing answers); and
``cpu_seconds(pid)`` for the benchmark's CPU accounting."""
from __future__ import annotations

import asyncio
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import orjson

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """User + system (or only system) CPU time of a process so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def http(method: str, url: str, key: str | None = None, body=None, headers=None,
         timeout: float = 10.0):
    """One blocking HTTP call: (status, parsed JSON body or text); raises if it cannot connect."""
    async def run():
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        async with aiohttp.ClientSession() as s:
            async with s.request(method, url, headers=h, data=body,
                                 timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                text = await r.text()
                try:
                    return r.status, orjson.loads(text)
                except orjson.JSONDecodeError:
                    return r.status, text
    return asyncio.run(run())


def get_json(url: str, key: str | None = None, timeout: float = 5.0) -> tuple[int, object]:
    """(status, decoded JSON body or None) of one GET; status 0 if the connection failed."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with _DIRECT.open(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError:
        return 0, None
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, None
