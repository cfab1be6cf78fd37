"""How far this worker has applied each ``events`` partition, and waiting for a position.

The customers agent calls ``advance`` once per batch, after the batch's states entered the
write-back overlays (which every read sees): the highest offset per partition of the batch.
A read with a read-your-writes token waits in ``wait`` until its partition reaches the
token's offset. Waiting is an ``asyncio.Event`` per partition, set (and replaced) by each
``advance`` of that partition: no polling.

A worker that was just assigned a partition has applied none of it itself, but everything
below the offset it started consuming from (the committed offset at assignment) is in its
restored tables: the caller passes that as ``floor`` (``committed - 1``). Revoked
partitions are forgotten (``forget``) so that a partition coming back later starts from
its new floor, not from what this worker applied the last time it owned it.

A partition is *caught up* here once this worker has applied it up to the high-water mark of
its first fetch after the assignment (``caught_up``): the worker that owned it before may
have served states it applied but had not yet flushed to the changelog, which this worker's
restore does not hold. Serving before then could answer an older state (or a 404) after a
newer one was seen: reads go back in time across a takeover. The target is taken once
and kept (under a steady stream the high water keeps moving); being caught up sticks until
the partition is revoked.

No Faust here (``install`` only connects a signal of the app it is given): the unit tests
drive it with plain events and floors.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterable, Optional

NONE = -1  # "nothing applied": below every offset


class Applied:
    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}  # partition -> highest offset applied here
        self.events: dict[int, asyncio.Event] = {}  # partition -> set on its next advance
        self.targets: dict[int, int] = {}  # partition -> offset to apply before serving
        self.caught: set[int] = set()  # partitions caught up since their assignment

    def advance(self, acks: Iterable) -> None:
        """Record a batch as applied: its acks (``.partition``, ``.offset``: the highest
        offset each answers for; records will do too)."""
        tops: dict[int, int] = {}
        for ack in acks:
            if ack.offset > tops.get(ack.partition, NONE):
                tops[ack.partition] = ack.offset
        for partition, offset in tops.items():
            if offset > self.offsets.get(partition, NONE):
                self.offsets[partition] = offset
            self._wake(partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer owns; their waiters re-check (and give up)."""
        for partition in partitions:
            self.offsets.pop(partition, None)
            self.targets.pop(partition, None)
            self.caught.discard(partition)
            self._wake(partition)

    def _wake(self, partition: int) -> None:
        event = self.events.pop(partition, None)
        if event is not None:
            event.set()

    def position(self, partition: int, floor: Optional[int] = None) -> int:
        """Highest offset of ``partition`` readable here (``NONE`` if nothing)."""
        return max(self.offsets.get(partition, NONE), NONE if floor is None else floor)

    def caught_up(self, partition: int, floor: Optional[int], highwater: Optional[int]) -> bool:
        """True once ``partition`` is applied here up to the last offset that existed at its
        first fetch (``highwater`` - 1; None: no fetch answered yet, not caught up)."""
        if partition in self.caught:
            return True
        target = self.targets.get(partition)
        if target is None:
            if highwater is None:
                return False
            target = self.targets[partition] = highwater - 1
        if self.position(partition, floor) >= target:
            self.caught.add(partition)
            return True
        return False

    async def wait(self, partition: int, offset: int, timeout_s: float,
                   floor: Callable[[], Optional[int]] = lambda: None) -> tuple[bool, int]:
        """(True, position) once ``partition`` has applied ``offset``, else (False, position)
        after ``timeout_s``; ``floor()`` is asked again after every wake-up."""
        deadline = time.monotonic() + timeout_s
        while True:
            position = self.position(partition, floor())
            remaining = deadline - time.monotonic()
            if position >= offset or remaining <= 0:
                return position >= offset, position
            event = self.events.get(partition) or self.events.setdefault(partition,
                                                                         asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                pass


applied = Applied()


def install(app, topic_name: str) -> None:
    """Forget ``topic_name`` partitions when the app's consumer loses them."""

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender, revoked, **kwargs) -> None:
        applied.forget(tp.partition for tp in revoked if tp.topic == topic_name)
