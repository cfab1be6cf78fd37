"""Bounded staleness: when a worker may still answer as the owner of its partitions.

The consumer group decides who owns a partition; a worker only learns that it lost its
partitions by talking to the group's coordinator. A worker cut off from the brokers keeps
its tables and its old assignment, so it could go on answering reads with values that no
longer change while another worker has taken the partitions over (a "zombie owner").

The rule: a worker vouches for its assignment only while the newest group heartbeat the
coordinator accepted was *sent* at most ``bound_s`` ago. With the bound equal to the group
session timeout, the worker stops answering no later than the coordinator drops it from the
group (the coordinator counts the session from when it *received* that heartbeat, which is
later), so it has stopped before any other worker can be given its partitions, and no value
it serves is older than the bound. Pure: the caller passes the clock.
"""
from __future__ import annotations

from typing import Optional


def vouched(last_contact: Optional[float], now: float, bound_s: float) -> bool:
    """True if the last accepted heartbeat (sent at ``last_contact``, same clock as ``now``)
    is at most ``bound_s`` old; False before any (the worker was never a member)."""
    return last_contact is not None and now - last_contact <= bound_s


def contact_age(last_contact: Optional[float], now: float) -> Optional[float]:
    """Seconds since the last accepted heartbeat was sent, rounded for answers; None if none."""
    return None if last_contact is None else round(max(0.0, now - last_contact), 1)
