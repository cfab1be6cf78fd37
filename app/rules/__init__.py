"""The pure rules: ``apply(state, event) -> state``, idempotent and order-independent where
the domain allows, importing nothing of Faust, aiohttp, the settings or the clock (time is
passed in). Event validation (``events``), session and profile state, deduplication, KPIs
and their windows, recommendations, webhook triggers, aliases and the reconcile comparison.
The agents apply them; the tests' oracle folds them; the benchmark times them alone."""
