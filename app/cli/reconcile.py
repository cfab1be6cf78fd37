"""Re-fold the events still on ``events`` with the pure rules and compare with the live state.

``persona-reconcile [--repair] [--wait S]`` (same environment as the workers). Exit 0 when
every customer matches, 1 on any mismatch, 2 when it could not compare (the workers did not
catch up within ``--wait``).

The live state is read from the tables' changelog topics, not through the workers' HTTP
API: a changelog document is exactly what a restoring worker would serve, with the
agent's internal fields (event-id memory, spans) and ``_pos``, the position of the last
event folded into it, so each document is compared with the fold of precisely the events
it claims to contain; it costs the workers nothing and needs no API key. In flight: the
tool captures the end offsets of ``events`` first and waits until the workers' consumer
group has committed them (the agent commits only after the flush made those states
durable in the changelogs); then it reads the changelogs to their end, then ``events`` to
its new end. Each document is compared with the fold of its customer's events up to the
later of (captured end - 1) and its own ``_pos``; customers whose every event came after
the captured ends are counted as in flight and skipped.

``--repair`` puts one ``reconcile`` command per mismatching customer on ``events`` (an
internal type: ``POST /v1/events`` refuses it): the customer agent replaces each named
document with the re-fold if it is still the document this run saw (compare-and-set by
digest, ``app.rules.reconcile``), else leaves it for the next run. No table is written
from here.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer

from app.cli import logread, progress
from app.cli.replay import _bootstrap
from app.consistency.shadow import app_id, changelog
from app.rules import reconcile
from app.rules.events import STATE_TABLES, parse
from app.settings import settings

EVENTS = "events"


@dataclass
class Report:
    ends: dict = field(default_factory=dict)  # events end offsets compared up to
    records: int = 0  # events records read
    checked: int = 0
    matching: int = 0
    in_flight: int = 0
    unverifiable: int = 0  # in a partition whose start was deleted by retention
    #: customer_id -> {table: {field: (live, expected)}}
    mismatches: dict = field(default_factory=dict)
    #: customer_id -> {table: (live document, expected document)} for --repair
    repairs: dict = field(default_factory=dict)
    #: mismatching customers with documents but no event on the topic: not repaired (that
    #: would delete them; more likely lost history, e.g. a recreated topic, than a fault)
    orphans: list = field(default_factory=list)


def fold_at(events: list, cuts: dict, idle_ms: int) -> dict:
    """{table: expected document} after the events (offset, event) at or below each cut."""
    session = profile = None
    out = {}
    for offset, ev in events:
        for name, cut in cuts.items():
            if offset > cut and name not in out:
                out[name] = session if name == "sessions" else profile
        if len(out) == len(cuts):
            break
        try:
            session, profile = reconcile.step(session, profile, ev, idle_ms)
        except Exception:  # noqa: BLE001 - the agent dead-letters such an event: so do we
            continue
    for name in cuts:
        out.setdefault(name, session if name == "sessions" else profile)
    return out


def compare(ends: dict, starts: dict, live: dict, events: dict, idle_ms: int) -> Report:
    """``live``: {table: {cid: document or None}}; ``events``: {cid: [(offset, event)]}."""
    report = Report(ends=dict(ends))
    parts = len(ends)
    for cid in sorted(set(events).union(*live.values())):
        p = logread.partition_for(cid.encode(), parts)
        if starts.get(p, 0) > 0:
            report.unverifiable += 1
            continue
        mine, docs = events.get(cid, []), {t: live[t].get(cid) for t in STATE_TABLES}
        if all(d is None for d in docs.values()) and not any(o < ends[p] for o, _ in mine):
            report.in_flight += 1
            continue
        cuts = {}
        for name, doc in docs.items():
            pos = doc.get(reconcile.POS) if doc else None
            own = pos[1] if isinstance(pos, list) and len(pos) == 2 and pos[0] == p else -1
            cuts[name] = max(ends[p] - 1, own)
        expected = fold_at(mine, cuts, idle_ms)
        report.checked += 1
        diff = {t: d for t in STATE_TABLES if (d := reconcile.differing(docs[t], expected[t]))}
        if diff and not mine:
            report.mismatches[cid] = diff
            report.orphans.append(cid)
        elif diff:
            report.mismatches[cid] = diff
            report.repairs[cid] = {t: (docs[t], expected[t]) for t in diff}
        else:
            report.matching += 1
    return report


async def run(broker_url: str = settings.broker_url, app: str = app_id(settings.shadow),
              wait_s: float = 60.0, idle_ms: int = settings.session_idle_ms,
              compat: bool = settings.local_broker_compat, shown: bool = False) -> Report:
    """Read the changelogs, then ``events``, and compare; ``shown``: progress on a terminal."""
    bootstrap = _bootstrap(broker_url)
    consumer = logread.reader(bootstrap)
    await consumer.start()
    try:
        ends = await logread.end_offsets(consumer, bootstrap, EVENTS, compat)
        await logread.wait_committed(bootstrap, app, EVENTS, ends, wait_s)
        live: dict = {}
        for table in STATE_TABLES:
            topic = changelog(table, app)
            docs = live[table] = {}
            tail = await logread.end_offsets(consumer, bootstrap, topic, compat)
            head = await logread.start_offsets(consumer, bootstrap, topic) if shown else {}
            with progress.bar(table, sum(tail[p] - head.get(p, 0) for p in tail),
                              enabled=shown) as bar:
                async for r in logread.read_to(bootstrap, topic, tail):
                    docs[orjson.loads(r.key)] = None if r.value is None else orjson.loads(r.value)
                    bar.update()
        starts = await logread.start_offsets(consumer, bootstrap, EVENTS)
        now = await logread.end_offsets(consumer, bootstrap, EVENTS, compat)
        events: dict = {}
        records = 0
        with progress.bar(EVENTS, sum(now[p] - starts.get(p, 0) for p in now),
                          enabled=shown) as bar:
            async for r in logread.read_to(bootstrap, EVENTS, now):
                records += 1
                bar.update()
                try:
                    ev = parse(r.value)
                except Exception:  # noqa: BLE001 - the agent dead-letters it
                    continue
                cid = ev["customer_id"]
                if r.key != cid.encode() or logread.partition_for(r.key, len(now)) != r.partition:
                    continue  # misrouted: the agent re-keys it; the copy is read in its place
                events.setdefault(cid, []).append((r.offset, ev))
    finally:
        await consumer.stop()
    report = compare(ends, starts, live, events, idle_ms)
    report.records = records
    return report


async def send_repairs(report: Report, broker_url: str = settings.broker_url) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(broker_url), acks="all",
                                **logread.auth())
    await producer.start()
    try:
        now = int(time.time() * 1000)
        futures = [await producer.send(EVENTS, orjson.dumps(reconcile.command(
            cid, repairs, now, f"reconcile-{uuid.uuid4()}")), key=cid.encode())
            for cid, repairs in report.repairs.items()]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


def short(value, width: int = 100) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= width else text[:width - 3] + "..."


def print_report(report: Report, out=sys.stdout) -> None:
    print(f"events: {report.records} records; compared up to end offsets "
          f"{ {p: e for p, e in sorted(report.ends.items())} }", file=out)
    print(f"customers: {report.checked} checked, {report.matching} match, "
          f"{len(report.mismatches)} mismatch, {report.in_flight} in flight (skipped), "
          f"{report.unverifiable} unverifiable (partition start deleted by retention)", file=out)
    for cid, tables in report.mismatches.items():
        for table, fields in tables.items():
            print(f"MISMATCH {cid} {table}: {', '.join(fields)}", file=out)
            for name, (live, expected) in fields.items():
                print(f"  {name}: live {short(live)} expected {short(expected)}", file=out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true",
                        help="send a reconcile command on events for each mismatching customer")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for the workers to apply the events (default 60)")
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(run(wait_s=args.wait, shown=True))
    except TimeoutError as exc:
        print(f"persona-reconcile: cannot compare: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_report(report)
    if args.repair and report.repairs:
        sent = asyncio.run(send_repairs(report))
        print(f"repair: sent {sent} reconcile command(s) to {EVENTS}; run again to check")
    if args.repair and report.orphans:
        print(f"repair: left {len(report.orphans)} customer(s) with no event on {EVENTS} alone "
              f"(a repair would delete them): {', '.join(report.orphans[:10])}")
    raise SystemExit(1 if report.mismatches else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
