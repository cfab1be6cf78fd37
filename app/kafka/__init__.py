"""Faust/Kafka plumbing that leans on private APIs, in one place, pinned to versions.

- ``internals``: small wrappers of private Faust attributes the agents and views need;
- ``workarounds``: patches for two faust-streaming races around rebalances;
- ``broker_compat``: true end offsets on the bundled broker (compatibility switch only);
- ``restore``: bulk restore of active changelog partitions (RocksDB store);
- ``fastpath``: bulk table writes (RocksDB WriteBatch + changelog records) for the
  customers agent's write-back flush;
- ``consume``: Faust's consumer loop without a task per message when none has to wait.

``install(app, settings)`` checks the installed versions (an error in the log when they
are not the ones this package was written for) and installs the patches.
"""
from __future__ import annotations

import logging
from importlib.metadata import version

log = logging.getLogger(__name__)

#: The versions every private API use in this package was written for and tested with.
WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def version_mismatches() -> dict:
    """``{distribution: installed}`` for each one that is not the version written for."""
    found = {name: version(name) for name in WRITTEN_FOR}
    return {name: v for name, v in found.items() if v != WRITTEN_FOR[name]}


def check_versions() -> bool:
    bad = version_mismatches()
    for name, installed in bad.items():
        log.error("app.kafka was written for %s==%s but %s is installed: its patches of "
                  "private APIs may not hold (see tests/unit/test_kafka_internals.py)",
                  name, WRITTEN_FOR[name], installed)
    return not bad


def install(app, local_broker_compat: bool) -> None:
    from app.kafka import broker_compat, consume, restore, workarounds

    check_versions()
    workarounds.install(app)  # Faust races that skip events around rebalances
    restore.install()  # getmany + WriteBatch instead of one event per changelog record
    consume.install()  # no wait_first (4 futures + asyncio.wait) per message unless needed
    if local_broker_compat:
        broker_compat.install()  # true end offsets on the bundled broker (BROKER.md)
