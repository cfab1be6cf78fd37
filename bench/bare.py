"""The lookup limit: a bare aiohttp server answering a similar JSON profile body.

``python -m bench.bare PORT BODY_FILE``: GET /v1/customers/{id}/profile checks a
bearer key (sha256 + constant-time compare, like web/auth.py) and returns the body
from BODY_FILE (a real profile view) with the customer id filled in, orjson-encoded.
No Faust, no table, no routing.
"""
from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from aiohttp import web

KEY_DIGEST = hashlib.sha256(b"bench-key-0123456789").digest()


def app(body: dict) -> web.Application:
    async def profile(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        digest = hashlib.sha256(auth[len("Bearer "):].encode()).digest()
        if not hmac.compare_digest(digest, KEY_DIGEST):
            return web.json_response({"error": "unauthorized"}, status=401)
        answer = {**body, "customer_id": request.match_info["cid"]}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    application = web.Application()
    application.router.add_get("/v1/customers/{cid}/profile", profile)
    return application


def start(port: int, body: dict, tmp: Path) -> subprocess.Popen:
    path = tmp / "bare-body.json"
    path.write_bytes(orjson.dumps(body))
    proc = subprocess.Popen([sys.executable, "-m", "bench.bare", str(port), str(path)],
                            cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/customers/x/profile", timeout=1)
        except urllib.error.HTTPError:
            return proc  # 401: serving
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("bare aiohttp server did not start")


if __name__ == "__main__":
    web.run_app(app(orjson.loads(Path(sys.argv[2]).read_bytes())), host="127.0.0.1",
                port=int(sys.argv[1]), access_log=None, print=None)
