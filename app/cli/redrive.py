"""Send parked webhook deliveries from ``webhooks-dlq`` back to ``webhook-deliveries``.

``persona-redrive [--subscription ID] [--dry-run]``. Each subscription has its own consumer
group on the DLQ (``persona-redrive.<id>``): the first run reads from the beginning, and every
run commits the offsets it has handled only after the broker acknowledged the re-sent
requests, so running it again never resends the same entries (and redriving one subscription
leaves the others' entries for their own run). Without ``--subscription`` every configured
subscription (``PERSONA_WEBHOOKS``/``PERSONA_WEBHOOKS_FILE``) is redriven in turn. Entries go
back with their attempt count reset and their original ``webhook-id`` and ``source``.

Entries of erased customers go back too: the tool does not read the erase markers. The
worker that owns the outbox partition does, and drops every request created before the
customer's erase (``tables/erasures.py``), so none of them leaves Persona.

Every real run writes one audit record per subscription (``app.observability.audit``, topic ``audit``:
``"action": "redrive"``, the count) once the re-sent entries are acknowledged and before the
DLQ offsets are committed. The key id is that of ``PERSONA_ADMIN_KEY`` (an ``admin`` key of
``PERSONA_API_KEYS``, checked; the tool needs no key to reach the broker, so this names the
operator rather than guarding anything), else ``local:<OS user>``.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import hmac
import os
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.auth.apikeys import digest
from app.cli import logread
from app.cli.replay import _bootstrap
from app.kafka.broker_compat import true_end_offsets
from app.observability import audit
from app.settings import settings
from app.webhooks import formats, subscriptions

DLQ, OUTBOX, AUDIT = "webhooks-dlq", "webhook-deliveries", "audit"
GROUP_PREFIX = "persona-redrive"


def operator_key_id(env=os.environ, keys=None) -> str:
    """The audit key id of whoever runs the tool (see the module docstring)."""
    key = env.get("PERSONA_ADMIN_KEY", "").strip()
    if not key:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = ""
        return audit.local_key_id(user)
    keys = settings.api_keys if keys is None else keys
    presented, found = digest(key), None
    for known, scopes in keys:
        if hmac.compare_digest(known, presented):
            found = scopes
    if found is None or "admin" not in found:
        raise SystemExit("persona-redrive: PERSONA_ADMIN_KEY is not an admin key of "
                         "PERSONA_API_KEYS")
    return audit.key_id(key)


async def redrive(subscription_id: str, broker_url: str = settings.broker_url,
                  dry_run: bool = False, timeout: float = 60.0,
                  group_prefix: str = GROUP_PREFIX, key_id: str = "unknown") -> int:
    """Re-send this subscription's DLQ entries not redriven yet; returns how many."""
    bootstrap = _bootstrap(broker_url)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **logread.auth(),
                                enable_auto_commit=False,
                                group_id=f"{group_prefix}.{subscription_id}",
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **logread.auth())
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(DLQ, p) for p in await logread.partitions(bootstrap, DLQ)]
        if not tps:
            return 0
        consumer.assign(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        end = await consumer.end_offsets(tps)
        if settings.local_broker_compat:  # the bundled broker's ListOffsets is low (BROKER.md)
            end = await true_end_offsets(bootstrap, end)
        handled, pending, sent = {}, [], 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                break
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    handled[tp] = r.offset + 1
                    try:
                        entry = orjson.loads(r.value)
                        mine = entry.get("subscription_id") == subscription_id
                        record = formats.redriven(entry, int(time.time() * 1000)) if mine else None
                    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
                        print(f"skipping malformed entry {tp.partition}@{r.offset}", file=sys.stderr)
                        continue
                    if record is None:
                        continue
                    sent += 1
                    if not dry_run:
                        pending.append(await producer.send(
                            OUTBOX, orjson.dumps(record), key=str(record["customer_id"]).encode()))
        else:
            print(f"{subscription_id}: stopped after {timeout}s before the end of {DLQ}",
                  file=sys.stderr)
        if pending:
            await asyncio.gather(*pending)  # all acknowledged before the offsets move
        if not dry_run:  # audited before the offsets move (a failure here resends later)
            key, value = audit.record("redrive", f"subscription:{subscription_id}", key_id,
                                      int(time.time() * 1000), count=sent)
            await (await producer.send(AUDIT, value, key=key))
        if handled and not dry_run:
            await consumer.commit(handled)
        return sent
    finally:
        await producer.stop()
        await consumer.stop()


async def redrive_all(subscription_ids, **kw) -> dict:
    return {sid: await redrive(sid, **kw) for sid in subscription_ids}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscription", help="only this subscription id (default: all configured)")
    parser.add_argument("--dry-run", action="store_true", help="count, send nothing, commit nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per subscription")
    args = parser.parse_args(argv)
    if args.subscription:
        ids = [args.subscription]
    else:
        try:
            ids = [s.id for s in settings.webhooks]
        except subscriptions.WebhookConfigError as exc:
            raise SystemExit(f"persona-redrive: {exc}") from None
        if not ids:
            raise SystemExit("persona-redrive: no subscriptions configured; pass --subscription ID")
    counts = asyncio.run(redrive_all(ids, dry_run=args.dry_run, timeout=args.timeout,
                                     key_id=operator_key_id()))
    verb = "would redrive" if args.dry_run else "redrove"
    for sid, n in counts.items():
        print(f"{sid}: {verb} {n} deliveries from {DLQ} to {OUTBOX}")


if __name__ == "__main__":  # pragma: no cover
    main()
