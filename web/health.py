"""Liveness and readiness; no auth (they reveal no customer data)."""
from faust.web import View

from app.main import app
from web.auth import JWT
from web.routing import worker_ready


@app.page("/health")
class Health(View):
    async def get(self, request):
        return self.json({"status": "ok"})


@app.page("/ready")
class Ready(View):
    async def get(self, request):
        recovery = app.tables.recovery
        jwks = JWT is None or JWT.keys_loaded
        ready = worker_ready() and jwks
        body = {
            "ready": ready,
            "rebalancing": bool(app.rebalancing),
            "recovery_remaining": recovery.active_remaining_total(),
            "active_partitions": len(app.assignor.assigned_actives()),
        }
        if not jwks:
            body["jwks_loaded"] = False  # PERSONA_JWT_JWKS_URL has not loaded yet
        if ready:
            return self.json(body)
        return self.json(body, status=503, headers={"Retry-After": "1"})
