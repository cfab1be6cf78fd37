"""Named crash points for crash-safety tests: ``PERSONA_FAILPOINT=<name>`` makes the worker
send itself SIGKILL (kill -9: no flush, no commit, no goodbye to the group) the first time
the code reaches that point.

Only the write-back flush has points, because only there is the order of durable steps
Persona's own (``agents/writeback.py``): the KPI rows, then RocksDB, then the changelog,
then the commit.
A test arms one point, lets the worker die exactly there, restarts it without the
variable and checks every answer against the oracle (``tests/e2e/test_crash_points.py``).
Unset (the default and the only production setting) it costs one set lookup per flush.
"""
from __future__ import annotations

import os
import signal

POINTS = {
    "flush.after_kpis": "windowed KPI rows in RocksDB and on the changelog, no customer "
                        "document written yet",
    "flush.after_local_write": "both tables in RocksDB, no changelog record sent yet",
    "flush.after_changelog": "changelog acknowledged, events not released for commit yet",
}
_armed: frozenset = frozenset()


def arm(names) -> None:
    """Arm ``names`` (validated by ``app.settings``, which knows ``POINTS``)."""
    global _armed
    _armed = frozenset(names)


def hit(name: str) -> None:
    if name in _armed:
        os.write(2, f"persona: failpoint {name}: kill -9 of this worker\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
