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

from typing import NamedTuple, Optional


def vouched(last_contact: Optional[float], now: float, bound_s: float) -> bool:
    """True if the last accepted heartbeat (sent at ``last_contact``, same clock as ``now``)
    is at most ``bound_s`` old; False before any (the worker was never a member)."""
    return last_contact is not None and now - last_contact <= bound_s


def contact_age(last_contact: Optional[float], now: float) -> Optional[float]:
    """Seconds since the last accepted heartbeat was sent, rounded for answers; None if none."""
    return None if last_contact is None else round(max(0.0, now - last_contact), 1)


class WriteLease(NamedTuple):
    """How long after its last contact a worker may still hand changelog records to the
    broker, and the limits that bound how late one of them can arrive there.

    A worker cut off from the brokers still holds state it has not written. If its
    changelog records reached the broker after the group gave its partitions to another
    worker, they would land after the new owner's and the next restore would take them for
    the newest ("late writes" of a zombie owner). So every record must have reached the
    broker, or be dropped, before the coordinator can drop the worker: ``bound_s`` after the
    newest heartbeat it accepted. A record handed over at most ``lease_s`` after that
    heartbeat was sent waits at most ``request_s`` to be sent (its batch expires), at most
    ``request_s`` for a connection, at most ``request_s`` for the answer (the connection is
    then closed without lingering), and its bytes stay unacknowledged in the kernel at most
    ``unacked_s`` (TCP_USER_TIMEOUT). ``lease_s + 3 * request_s + unacked_s`` is ``0.9`` of
    the bound: a tenth is left for clock rates and the broker's own queue.
    """

    lease_s: float
    request_s: float
    unacked_s: float

    def latest_arrival_s(self) -> float:
        """Seconds after the last contact by which a handed-over record has arrived or died."""
        return self.lease_s + 3 * self.request_s + self.unacked_s


def write_lease(bound_s: float) -> WriteLease:
    """The write lease for a staleness bound (the group session timeout)."""
    step = bound_s / 10
    return WriteLease(lease_s=bound_s / 2, request_s=step, unacked_s=step)


def may_write(last_contact: Optional[float], now: float, bound_s: float) -> bool:
    """True if a changelog record handed to the broker now is sure to arrive (or die)
    before the coordinator can give this worker's partitions to another."""
    return vouched(last_contact, now, write_lease(bound_s).lease_s)
