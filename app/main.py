"""The one Faust app. Run with ``faust -A app.main worker`` (see Procfile)."""
import sys
from pathlib import Path

import faust

from app import broker_compat, faust_workarounds
from app.settings import faust_options, settings
from app.webhooks import configured as webhook_subscriptions

# Faust only logs errors raised while autodiscovering agents and starts without them, so a
# bad PERSONA_WEBHOOKS / PERSONA_WEBHOOKS_FILE must fail here, naming the entry and field.
webhook_subscriptions()

# Faust creates only the last level of its data dir.
Path(settings.data_dir).parent.mkdir(parents=True, exist_ok=True)

app = faust.App(
    "persona",
    origin="app",
    autodiscover=["agents", "tables", "web"],
    **faust_options(settings),
)
faust_workarounds.install(app)  # Faust races that skip events around rebalances
if settings.local_broker_compat:
    broker_compat.install()  # true end offsets on the bundled broker (BROKER.md)


def main() -> None:
    """``persona-worker worker ...``: Faust's command line, on uvloop unless -L is given."""
    if not {"-L", "--loop"} & set(sys.argv):
        sys.argv[1:1] = ["-L", "uvloop"]
    app.main()
