"""Optional TLS for the web server (PERSONA_TLS_CERT / PERSONA_TLS_KEY)."""
from __future__ import annotations

import asyncio
import ssl
import subprocess

import aiohttp
import pytest

from tests.conftest import READ

pytestmark = pytest.mark.e2e


async def get(url, ctx, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=ctx, headers=headers) as r:
            return r.status


def test_tls_serves_https_only(cluster, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    w = cluster.start(wait=False, env={"PERSONA_TLS_CERT": str(cert), "PERSONA_TLS_KEY": str(key),
                                      "PERSONA_TLS_CA": str(cert)})
    ctx = ssl.create_default_context(cafile=str(cert))
    https = f"https://127.0.0.1:{w.port}"

    async def ready():
        for _ in range(300):
            try:
                if await get(f"{https}/ready", ctx) == 200:
                    return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
        return False

    assert asyncio.run(ready()), w.tail()
    assert asyncio.run(get(f"{https}/v1/customers/nobody/profile", ctx)) == 401
    assert asyncio.run(get(f"{https}/v1/customers/nobody/profile", ctx, READ)) == 404
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(get(f"http://127.0.0.1:{w.port}/health", None))
