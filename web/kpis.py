"""``GET /v1/kpis?window=1m|1d&from=&to=`` (scope ``read``): the business KPIs of every
``events`` partition, from the windowed KPI rows (``tables.kpis``).

Each worker holds the rows of its own partitions only, so the worker asked gathers:
it looks up the owner of every partition of the window's table (the assignor map that
routes forwarded reads, ``app.kafka.internals.owner_url``), sums its own partitions that
it serves (assigned and restored, ``web.routing.serving``) and asks every other owner for
exactly the partitions it owns, with ``X-Persona-Forwarded`` and the caller's
``Authorization`` (the same HTTP path, TLS and timeout as forwarded reads). A peer answers
the raw rows of the partitions it serves among those asked. Each partition is taken from
one answer only; if their union is not every partition (an owner restoring, moving or
unreachable, no assignment yet) the answer is 503 with the missing partitions, never a
partial sum.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import aiohttp
import orjson
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from yarl import URL

from app.kafka.internals import owner_url
from app.kafka.webview import View
from app.main import app
from app.rules import window_kpis as wk
from app.settings import settings
from tables.kpis import kpi_tables, local_rows
from web.auth import require
from web.routing import FORWARD_TIMEOUT_S, FORWARDED, PEER_SSL, RETRY_AFTER_S, _is_self, serving

log = logging.getLogger(__name__)
#: Default span when ``from`` is not given: the last hour of minutes, the last 30 days.
DEFAULT_SPAN_MS = {"1m": 3600 * 1000, "1d": 30 * wk.DAY_MS}
TIME_HINT = "epoch milliseconds or an ISO-8601 date-time with a zone"


def parse_time(raw: str):
    """Epoch ms from digits or an ISO-8601 date-time with a zone; None if neither."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return None if dt.tzinfo is None else int(dt.timestamp() * 1000)


def parse_query(query, now_ms: int):
    """``(window, first window start, to)`` or ``(None, {field: [messages]})`` (pure)."""
    errors: dict = {}
    window = query.get("window", "1m")
    if window not in wk.WINDOWS:
        return None, {"window": [f"one of {', '.join(wk.WINDOWS)}"]}
    size_ms = wk.WINDOWS[window][0]
    times = {}
    for name, default in (("to", now_ms), ("from", None)):
        raw = query.get(name)
        value = default if raw is None else parse_time(raw)
        if value is None and raw is not None:
            errors[name] = [TIME_HINT]
        times[name] = value
    if errors:
        return None, errors
    to, first = times["to"], times["from"]
    if first is None:
        first = to - DEFAULT_SPAN_MS[window]
    # from >= to is an empty range (200, no windows), not an error: OpenAPI cannot state the
    # order of two parameters, and an empty answer is what the range means.
    if first >= to:
        return (window, to, to), None
    # Any span: the answer walks the rows held (at most what is kept), not the range.
    return (window, wk.window_start(first, size_ms), to), None


def local_part(window: str, partitions: set, start: int, to: int) -> tuple:
    """(partitions served here among ``partitions``, {window start: merged row}, newest
    window start of those partitions or None)."""
    topic = kpi_tables[window].changelog_topic.get_topic_name()
    served = {p for p in partitions if serving(TP(topic, p))}
    rows, newest = local_rows(window, served, start, to)
    by_start: dict = {}
    for (_, window_start), row in rows.items():
        by_start.setdefault(window_start, []).append(row)
    return (served, {s: wk.merge(rs) for s, rs in by_start.items()},
            max(newest.values(), default=None))


async def peer_part(request, url: str, window: str, start: int, to: int,
                    partitions: set) -> tuple:
    """The peer's rows: the range resolved here (its clock may differ), its partitions."""
    target = URL(url).with_path("/v1/kpis").with_query(
        {"window": window, "from": str(start), "to": str(to),
         "partitions": ",".join(map(str, sorted(partitions)))})
    headers = {FORWARDED: "1"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    async with app.http_client.get(target, headers=headers, ssl=PEER_SSL,
                                   timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as r:
        if r.status != 200:
            return set(), {}, None
        body = orjson.loads(await r.read())
    served = set(body["partitions"]) & partitions
    return served, {int(s): row for s, row in body["windows"].items()}, body["newest"]


def owners(window: str) -> dict | None:
    """{owner URL: its partitions} of every partition; None if one has no known owner."""
    topic = kpi_tables[window].changelog_topic.get_topic_name()
    out: dict = {}
    for partition in range(settings.partitions):
        url = owner_url(app, TP(topic, partition))
        if url is None:
            return None
        out.setdefault(url, set()).add(partition)
    return out


async def gather(request, window: str, start: int, to: int) -> tuple:
    """(partitions covered, [{window start: row}] one per answer, newest window start)."""
    try:
        by_owner = owners(window) or {}
    except ConsumerNotStarted:
        by_owner = {}
    calls, parts = [], []
    for url, partitions in by_owner.items():
        if _is_self(URL(url)):
            parts.append(local_part(window, partitions, start, to))
        else:
            calls.append(peer_part(request, url, window, start, to, partitions))
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, BaseException):
            log.warning("KPI gather from a peer failed: %r", result)
        else:
            parts.append(result)
    covered: set = set()
    answers, newest = [], None
    for served, rows, part_newest in parts:
        if served & covered:  # never twice the same partition
            continue
        covered |= served
        answers.append(rows)
        if part_newest is not None:
            newest = max(part_newest, newest or part_newest)
    return covered, answers, newest


def answer(window: str, start: int, to: int, answers: list, newest) -> dict:
    series: dict = {}
    for rows in answers:
        for window_start, row in rows.items():
            series.setdefault(window_start, []).append(row)
    merged = {s: wk.merge(rows) for s, rows in sorted(series.items())}
    return {"window": window, "from": start, "to": to, "partitions": settings.partitions,
            "newest": newest,
            "totals": wk.summary(wk.merge(merged.values())),
            "series": [{"start": s, **wk.summary(row)} for s, row in merged.items()]}


@app.page("/v1/kpis")
class Kpis(View):
    @require("read")
    async def get(self, request):
        now_ms = int(time.time() * 1000)
        params, errors = parse_query(request.query, now_ms)
        if errors:
            return self.json({"error": "invalid request", "fields": errors}, status=400)
        window, start, to = params
        if request.headers.get(FORWARDED):  # a peer gathering: this worker's raw rows
            try:
                asked = {int(p) for p in request.query.get("partitions", "").split(",") if p}
            except ValueError:
                return self.json({"error": "invalid request",
                                  "fields": {"partitions": ["comma-separated integers"]}},
                                 status=400)
            served, rows, newest = local_part(window, asked, start, to)
            return self.bytes(orjson.dumps({"partitions": sorted(served), "newest": newest,
                                            "windows": {str(s): row for s, row in rows.items()}}),
                              content_type="application/json")
        covered, answers, newest = await gather(request, window, start, to)
        missing = sorted(set(range(settings.partitions)) - covered)
        if missing:
            return self.json({"error": "unavailable", "missing_partitions": missing,
                              "detail": "the KPIs of these partitions are not available now "
                                        "(restoring, moving or unreachable)"},
                             status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return self.bytes(orjson.dumps(answer(window, start, to, answers, newest)),
                          content_type="application/json")
