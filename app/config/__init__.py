"""The parts ``app.settings`` is built from: reading numbers, booleans and bounds from the
environment, the list of every known ``PERSONA_*`` variable (``env``), so a misspelt one stops
the worker at start; and the settings that are more than one value (``parts``: API keys, TLS
files, crash points, the demo key, the group timers)."""
