"""When the write-back (``agents/writeback.py``) flushes, and which ``events`` partitions.

Each partition is flushed on its own, once its oldest unflushed change is
``PERSONA_FLUSH_INTERVAL_S`` old, and at most one partition per ``interval / partitions
waiting``: the flushes of a worker's partitions spread evenly over the interval. One flush of
everything every interval held the worker's one core for up to a second (encoding and
writing ~10k customers' documents must not interleave with the agent), and a read waiting
for a fresh value waited behind it (freshness p99 1-2 s at 80 % of the maximum).
Each customer is still written once per interval, so the changelog records per event stay
the same. When all partitions start together (a worker starting under load), the first
round takes up to twice the interval; a partition whose change waited ``2 * interval`` is
flushed at once (``late``), so no change waits longer.

Every waiting partition at once (``ALL``) when the caller says it is urgent (too many
customers wait, a rebalance, a shutdown) or the input went quiet: no batch for ``IDLE_S``
(waiting longer saves records only while changes come in). A gap of ``STALL_S`` between two
checks (the flush task checks every 50 ms) is a stalled loop, a garbage collection or a
flush step, not quiet input: no batch could have come meanwhile, so it does not count towards
``IDLE_S``. Counting it made every 0.5 s collection a flush of everything.

Pure bookkeeping: time is passed in (monotonic seconds).
"""
from __future__ import annotations

from typing import Iterable, Optional

#: ``due``: flush every partition with a change waiting.
ALL = None
#: No batch for this long: flush everything now.
IDLE_S = 0.5
#: A gap this long between two ``due`` checks is a stalled loop, not quiet input.
STALL_S = 0.2


class FlushSchedule:
    """Per partition, the time of its oldest unflushed change; when to flush which."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.since: dict = {}  # partition -> time of its oldest unflushed change
        self.latest: Optional[float] = None  # time of the newest change
        self.last_flush = float("-inf")  # time the last flush started
        self.checked: Optional[float] = None  # time of the last ``due`` check

    def changed(self, partitions: Iterable[int], now: float) -> None:
        """A batch changed (or holds events of) ``partitions`` at ``now``."""
        for partition in partitions:
            self.since.setdefault(partition, now)
        self.latest = now

    def flushing(self, partitions, now: float) -> None:
        """A flush of ``partitions`` (``ALL``: every one) starts at ``now``."""
        self.last_flush = now
        if partitions is ALL:
            self.since.clear()
        else:
            for partition in partitions:
                self.since.pop(partition, None)

    def forget(self) -> None:
        self.since.clear()
        self.latest = None

    def due(self, now: float, urgent: bool = False):
        """What to flush at ``now``: ``ALL``, a list of partitions, or ``[]`` for nothing."""
        since = self.since
        previous, self.checked = self.checked, now
        if not since:
            return []
        if previous is not None and now - previous >= STALL_S and self.latest is not None:
            # Keep only the quiet time before the stall.
            self.latest = max(self.latest, now - max(0.0, previous - self.latest))
        if urgent or now - self.latest >= IDLE_S:
            return ALL
        late = [p for p, t in since.items() if now - t >= 2 * self.interval_s]
        if late:
            return late
        oldest = min(since, key=since.__getitem__)
        if (now - since[oldest] >= self.interval_s
                and now - self.last_flush >= self.interval_s / len(since)):
            return [oldest]
        return []
