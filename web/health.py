"""Liveness and readiness; no auth (they reveal no customer data).

``/ready`` is what a load balancer should route on: 503 while the worker starts, restores,
rebalances or stops, and while it is cut off from the brokers past the staleness bound
(``group_contact_age_s``, ``staleness_bound_s`` in the body then). ``/health`` only says
the process answers (a liveness check: restart it if that fails)."""
import time

from app.kafka import contact
from app.kafka.webview import View
from app.main import app
from app.rules.staleness import contact_age
from web.auth import JWT
from web.routing import STALENESS_BOUND_S, in_contact, worker_ready


@app.page("/health")
class Health(View):
    async def get(self, request):
        return self.json({"status": "ok"})


@app.page("/ready")
class Ready(View):
    async def get(self, request):
        recovery = app.tables.recovery
        jwks = JWT is None or JWT.keys_loaded
        vouched = in_contact()
        ready = worker_ready() and jwks and vouched
        body = {
            "ready": ready,
            "rebalancing": bool(app.rebalancing),
            "recovery_remaining": recovery.active_remaining_total(),
            "active_partitions": len(app.assignor.assigned_actives()),
        }
        if not vouched:  # cut off from the brokers past the bound (docs/consistency.md)
            body["group_contact_age_s"] = contact_age(contact.last, time.monotonic())
            body["staleness_bound_s"] = STALENESS_BOUND_S
        if not jwks:
            body["jwks_loaded"] = False  # PERSONA_JWT_JWKS_URL has not loaded yet
        if ready:
            return self.json(body)
        return self.json(body, status=503, headers={"Retry-After": "1"})
