"""Produce a JSONL file of events into the ``events`` topic, keyed by customer_id.

``persona-replay FILE [--rate N]``; ``-`` reads stdin. Lines are sent as they are
(the agents validate them); a line without a customer_id is sent without a key and
the agent dead-letters it if it is invalid.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaProducer

from app.cli import logread, progress
from app.settings import settings


def _bootstrap(url: str) -> str:
    return ",".join(u.split("://", 1)[-1] for u in url.split(";"))


def _key(line: bytes) -> bytes | None:
    try:
        cid = orjson.loads(line).get("customer_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return cid.encode() if isinstance(cid, str) else None


async def replay(lines, broker_url: str = settings.broker_url, topic: str = "events",
                 rate: float = 0.0, shown=None) -> int:
    """Send every non-empty line to ``topic``, keyed by its customer; the count sent, once the
    broker acknowledged all. ``shown``: a progress bar (``app.cli.progress``) to advance."""
    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(broker_url), linger_ms=5,
                                **logread.auth())
    await producer.start()
    sent = 0
    start = time.monotonic()
    try:
        pending = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            pending.append(await producer.send(topic, line, key=_key(line)))
            sent += 1
            if shown is not None:
                shown.update()
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        for fut in pending:
            await fut  # raises if the broker did not acknowledge
    finally:
        await producer.stop()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="JSONL file of events, or - for stdin")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (0 = as fast as possible)")
    parser.add_argument("--topic", default="events")
    args = parser.parse_args()
    src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    total = None
    if args.file != "-" and progress.on_terminal():
        total = progress.count_lines(args.file)
    with progress.bar("replay", total, unit=" events") as shown:
        n = asyncio.run(replay(src, topic=args.topic, rate=args.rate, shown=shown))
    print(f"replayed {n} events to {args.topic} at {settings.broker_url}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
