"""``persona-broker``: a local broker in the foreground, for development (dev extra).

    persona-broker [--kind tansu|kafka] [--port P] [--nodes 1|3]

``tansu`` (default) is the bundled broker, memory only. ``kafka`` is Apache Kafka from Maven
Central (fetched once into ``.kafka/``), KRaft, 1 node or a 3-node cluster on loopback, data
under ``.run/`` (a new cluster at each start). It prints the bootstrap address and the
``KAFKA_BROKER_URL`` for workers once a metadata round trip succeeded, and stops every node on
SIGTERM or Ctrl-C. Production never uses this.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from app import harness
from app.settings import LOCAL_BROKER_PORT_DEFAULT


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="persona-broker", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=harness.KINDS, default="tansu")
    parser.add_argument("--port", type=int, default=int(
        os.environ.get("PERSONA_LOCAL_BROKER_PORT", LOCAL_BROKER_PORT_DEFAULT)))
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 3),
                        help="Kafka only: 1 node or a 3-node cluster")
    parser.add_argument("--dir", default=None,
                        help="data folder: Kafka's data and logs, the bundled broker's log "
                             "(default .run/); created if missing")
    args = parser.parse_args(argv)
    if args.kind == "tansu" and args.nodes != 1:
        parser.error("--nodes 3 needs --kind kafka")
    return args


def main(argv=None) -> None:
    from app.harness.cluster import ROOT

    args = parse(argv)
    workdir = args.dir or ROOT / ".run"
    broker = harness.create(args.kind, args.port, workdir, args.nodes)

    def stop(*_):
        broker.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        broker.start()
    except harness.BrokerUnavailable as exc:
        print(f"persona-broker: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    urls = ";".join(broker.bootstrap.split(","))
    print(f"{args.kind} broker ready: bootstrap {broker.bootstrap}\n"
          f"  workers: KAFKA_BROKER_URL='kafka://{urls}'"
          + (" PERSONA_LOCAL_BROKER_COMPAT=1" if args.kind == "tansu" else "")
          + "\nCtrl-C stops it.", flush=True)
    status = broker.wait()
    broker.stop()
    print(f"persona-broker: a broker process exited with {status}", file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
