"""HyperLogLog distinct counts for the windowed KPIs' active customers (pure).

Why HyperLogLog and not an exact set: a window row then holds no customer id (an erased
customer leaves nothing behind), its size is bounded (``M`` registers), and adding is
idempotent and order independent (a register keeps the maximum), so a redelivered or
reordered event can never count a customer twice. Rows of different partitions merge by
the register-wise maximum, exactly as if one sketch had seen every customer.

Registers are kept *sparse* (``{"index": rank}``, only the non-zero ones) because most
1-minute windows see few customers. ``P`` = 14 (16,384 registers): standard error
1.04/sqrt(M) = 0.81 %, and linear counting (nearly exact) below 2.5 M ~ 40k customers.
The hash is BLAKE2b (64 bits) of the customer id: stable across processes and versions.
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

P = 14
M = 1 << P
_ALPHA = 0.7213 / (1 + 1.079 / M)
_REST_BITS = 64 - P


@lru_cache(maxsize=16384)  # every event asks for its customer's: a busy customer's is at hand
def register(customer_id: str) -> tuple[str, int]:
    """``(register index as a string, rank)`` of one customer (string: JSON object keys)."""
    h = int.from_bytes(hashlib.blake2b(customer_id.encode(), digest_size=8).digest(), "big")
    index, rest = h >> _REST_BITS, h & ((1 << _REST_BITS) - 1)
    rank = _REST_BITS - rest.bit_length() + 1
    return str(index), rank


def add(sketch: dict, customer_id: str) -> dict:
    """``sketch`` with the customer added (the same dict if nothing changed)."""
    index, rank = register(customer_id)
    if sketch.get(index, 0) >= rank:
        return sketch
    return {**sketch, index: rank}


def merge(into: dict, other: dict) -> None:
    """Register-wise maximum of ``other`` into ``into`` (in place)."""
    for index, rank in other.items():
        if rank > into.get(index, 0):
            into[index] = rank


def estimate(sketch: dict) -> int:
    """The estimated number of distinct customers, rounded (0 for an empty sketch)."""
    if not sketch:
        return 0
    zeros = M - len(sketch)
    raw = _ALPHA * M * M / (zeros + sum(2.0 ** -rank for rank in sketch.values()))
    if raw <= 2.5 * M and zeros:
        return round(M * math.log(M / zeros))
    return round(raw)
