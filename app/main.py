"""The one Faust app. Run with ``faust -A app.main worker`` (see Procfile)."""
import faust

from app.settings import faust_options, settings

app = faust.App(
    "persona",
    origin="app",
    autodiscover=["agents", "tables", "web"],
    **faust_options(settings),
)


def main() -> None:
    app.main()
