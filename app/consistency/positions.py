"""Read-your-writes tokens: per ``events`` partition, the highest offset a request wrote.

    encode({3: 1041, 7: 88}) -> "v1.W1szLDEwNDFdLFs3LDg4XV0"
    decode(token) -> {3: 1041, 7: 88}; merge(a, b) -> the later position per partition

Format ``v1.`` + unpadded base64url of compact JSON ``[[partition, offset], ...]`` (sorted by
partition): URL-safe, short for the one or two partitions a request usually writes, and
versioned so a later format can be told apart. The token is opaque to callers; ``decode``
refuses anything it did not produce (``BadToken``) rather than guess.

Pure (stdlib + orjson): the ingest view encodes, the read views decode, and the Python
client (``app.client``) merges the tokens of the several requests one ``send`` may need.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Mapping

import orjson

PREFIX = "v1."
MAX_LENGTH = 4096  # characters; a token names at most MAX_PARTITIONS partitions
MAX_PARTITIONS = 1024
MAX_OFFSET = 2 ** 63 - 1
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class BadToken(ValueError):
    """Not a token this module produced (wrong version, encoding or content)."""


def encode(positions: Mapping[int, int]) -> str:
    if not positions:
        raise ValueError("a token names at least one partition")
    pairs = [[int(p), int(o)] for p, o in sorted(positions.items())]
    data = base64.urlsafe_b64encode(orjson.dumps(pairs)).rstrip(b"=")
    return PREFIX + data.decode("ascii")


def decode(token: str) -> dict[int, int]:
    """{partition: offset}; ``BadToken`` with a message for a caller otherwise."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise BadToken("not a read-your-writes token (expected the v1. format)")
    if len(token) > MAX_LENGTH:
        raise BadToken("token too long")
    body = token[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        pairs = orjson.loads(raw) if BASE64URL.fullmatch(body) else None
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        pairs = None
    if not (isinstance(pairs, list) and 0 < len(pairs) <= MAX_PARTITIONS):
        raise BadToken("malformed token")
    positions: dict[int, int] = {}
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(type(n) is int for n in pair)  # no bools, no floats
                and 0 <= pair[0] < 2 ** 31 and 0 <= pair[1] <= MAX_OFFSET
                and pair[0] not in positions):
            raise BadToken("malformed token")
        positions[pair[0]] = pair[1]
    return positions


def merge(*tokens: str | None) -> str | None:
    """One token at least as late as each of ``tokens`` (None entries skipped)."""
    merged: dict[int, int] = {}
    for token in tokens:
        if token is not None:
            for p, o in decode(token).items():
                merged[p] = max(o, merged.get(p, o))
    return encode(merged) if merged else None
