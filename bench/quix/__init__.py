"""Quix Streams 3.28.1 as a contender in ``make bench``: the app (``app``), its ingest run
(``ingest``) and its rows in the table (``report``). Names shared by the app and the
benchmark live here, so the benchmark imports quixstreams only in the contender's process."""

GROUP = "persona-quix"  # the Quix consumer group (and the changelog topic's prefix)
TOPIC = "events"
STORE = "default"  # Quix's default store name
CHANGELOG = f"changelog__{GROUP}--{TOPIC}--{STORE}"  # Quix's name for that store's changelog
MARK = "quix-bench"  # the contender's lines for the benchmark on stdout
