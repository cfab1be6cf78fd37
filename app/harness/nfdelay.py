"""A slow link where the kernel has no ``tc netem``: delay and drop a host's packets in user
space (development and tests only).

Some kernels (small VMs, sandboxes) are built without the netem queueing discipline but with
netfilter's packet queue. ``app.harness.hosts`` then sends the host's outgoing packets to a
queue (``iptables -j NFQUEUE``) and runs this program in the host's namespace: it answers
each packet's verdict ``delay`` later (accept), or at once (drop) with probability ``loss``,
which is what ``netem delay 100ms loss 1%`` does to the same packets. Verdicts are given in
arrival order, so the link reorders nothing, as netem without jitter.

Plain netlink (``NETLINK_NETFILTER``, the nfnetlink_queue messages), no C library: run as
``python -m app.harness.nfdelay --queue N --delay-ms 100 --loss 0.01``; it prints ``ready``
once bound to the queue and runs until it is stopped.
"""
from __future__ import annotations

import argparse
import heapq
import random
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
QUEUE_SUBSYS = 3 << 8
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND, COPY_META = 1, 1
ATTR_PACKET_HDR, ATTR_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 1, 4, 2


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def message(kind: int, queue: int, attrs: list[bytes], flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), QUEUE_SUBSYS | kind, flags, 0, 0) + body


def packet_ids(data: bytes) -> list[int]:
    """The packet ids of the queued-packet messages in one netlink read."""
    ids, at = [], 0
    while at + 16 <= len(data):
        size, kind = struct.unpack_from("=IH", data, at)
        if size < 16:
            break
        if kind == QUEUE_SUBSYS | MSG_PACKET:
            pos, end = at + 20, at + size  # netlink header, then nfgenmsg (4 bytes)
            while pos + 4 <= end:
                length, akind = struct.unpack_from("=HH", data, pos)
                if length < 4:
                    break
                if akind & 0x7FFF == ATTR_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, pos + 4)[0])
                pos += (length + 3) & ~3
        elif kind == NLMSG_ERROR:
            error = struct.unpack_from("=i", data, at + 16)[0]
            if error:
                raise OSError(-error, "nfnetlink_queue refused a request")
        at += (size + 3) & ~3
    return ids


def bind(queue: int, maxlen: int = 8192) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    for attrs in ([attr(CFG_CMD, struct.pack("!BBH", CMD_BIND, 0, socket.AF_INET))],
                  [attr(CFG_PARAMS, struct.pack("!IB", 0, COPY_META)),
                   attr(CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))]):
        sock.send(message(MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
        packet_ids(sock.recv(65536))  # the acknowledgement; raises on an error
    return sock


def verdict(sock: socket.socket, queue: int, packet: int, accept: bool) -> None:
    hdr = attr(ATTR_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet))
    sock.send(message(MSG_VERDICT, queue, [hdr]))


def run(queue: int, delay_s: float, loss: float, seed: int | None = None) -> None:
    sock, rnd, due = bind(queue), random.Random(seed), []
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        wait = max(0.0, due[0][0] - now) if due else 1.0
        if select.select([sock], [], [], wait)[0]:
            arrived = time.monotonic()
            for packet in packet_ids(sock.recv(1 << 20)):
                if rnd.random() < loss:
                    verdict(sock, queue, packet, False)
                else:
                    heapq.heappush(due, (arrived + delay_s, packet))
        now = time.monotonic()
        while due and due[0][0] <= now:
            verdict(sock, queue, heapq.heappop(due)[1], True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--loss", type=float, default=0.0, help="share dropped, 0-1")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        run(args.queue, args.delay_ms / 1000, args.loss, args.seed)
    except KeyboardInterrupt:  # pragma: no cover
        pass
    except OSError as exc:
        sys.exit(f"nfdelay: {exc}")


if __name__ == "__main__":  # pragma: no cover
    main()
