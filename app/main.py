"""The one Faust app, built from ``app.settings``. Run with ``faust -A app.main worker``.

Importing it validates every setting first (``app.settings``): Faust only logs errors
raised while autodiscovering agents and views and starts without them, so no setting is
parsed in those modules. ``app.kafka.install`` checks the Faust version and patches.
"""
import sys
from pathlib import Path

import faust

from app import failpoints
from app.kafka import install as install_kafka_plumbing
from app.settings import faust_options, settings

# Faust creates only the last level of its data dir.
Path(settings.data_dir).parent.mkdir(parents=True, exist_ok=True)

app = faust.App(
    "persona",
    origin="app",
    autodiscover=["agents", "tables", "web"],
    **faust_options(settings),
)
install_kafka_plumbing(app, settings.local_broker_compat,  # version gate + patches
                       settings.allow_untested_versions, settings.fetch_max_wait_ms)
failpoints.arm(settings.failpoints)  # crash-safety tests only (PERSONA_FAILPOINT)


def main() -> None:
    """``persona-worker worker ...``: Faust's command line, on uvloop unless -L is given."""
    if not {"-L", "--loop"} & set(sys.argv):
        sys.argv[1:1] = ["-L", "uvloop"]
    app.main()
