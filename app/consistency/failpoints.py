"""Named crash points for crash-safety tests: ``PERSONA_FAILPOINT=<name>`` makes the worker
send itself SIGKILL (kill -9: no flush, no commit, no goodbye to the group) the first time
the code reaches that point.

The points sit where the order of durable steps is Persona's own: the write-back flush
(``agents/writeback.py``: the KPI rows, then RocksDB, then the changelog, then the commit),
checked by ``tests/e2e/test_crash_points.py`` (restart without the variable, every answer
against the oracle), and an erase (``tables/erasures.py``: its marker is durable before the
batch's outbox requests and states), checked by ``tests/e2e/test_erase_webhooks.py``
(restart: no webhook for the erased customer reaches the receiver).
Unset (the default and the only production setting) it costs one set lookup per flush
(and per batch with an erase).
"""
from __future__ import annotations

import os
import signal

POINTS = {
    "flush.after_kpis": "windowed KPI rows in RocksDB and on the changelog, no customer "
                        "document written yet",
    "flush.after_local_write": "both tables in RocksDB, no changelog record sent yet",
    "flush.after_changelog": "changelog acknowledged, events not released for commit yet",
    "erase.after_marker": "erase marker acknowledged on the erasures changelog; the batch's "
                          "outbox requests and states not written, nothing committed",
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
