"""Shadow mode (``PERSONA_SHADOW=<name>``): this worker runs as a separate app beside the live one.

``persona-shadow`` starts candidate code this way to compare its answers with the live
app's over the same ``events`` topic. A shadow app has its own app id
(``persona-shadow-<name>``: its own consumer group and its own table changelogs), its own
outbox and dead-letter topics (``persona-shadow-<name>-<topic>``, so its webhook agent has
nothing to deliver and the live DLQs stay untouched), no webhook subscriptions (so no
outbox requests and no abandoned-cart commands on ``events``), no demo shop, and it never
re-produces a misrouted event to ``events`` (the live app does; the shadow takes that
copy). It still *consumes* ``events``; ``persona-shadow`` gives it only a read key, so its
ingest and erase routes (which would produce to ``events``) answer 401/403.

Pure naming and parsing; ``app.settings`` calls ``shadow_name`` at start.
"""
from __future__ import annotations

import re
from typing import Mapping

LIVE_APP_ID = "persona"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")


def shadow_name(env: Mapping[str, str]) -> str:
    """PERSONA_SHADOW, validated; "" = the live app."""
    name = env.get("PERSONA_SHADOW", "").strip()
    if name and not _NAME.fullmatch(name):
        raise ValueError(f"PERSONA_SHADOW must be 1-48 of A-Z a-z 0-9 _ -, got {name!r}")
    return name


def app_id(name: str) -> str:
    """The Faust app id: the consumer group and the prefix of the changelog topics."""
    return f"{LIVE_APP_ID}-shadow-{name}" if name else LIVE_APP_ID


def own_topic(topic: str, name: str) -> str:
    """A topic the app writes besides its changelogs: the shadow's own copy of it."""
    return f"{app_id(name)}-{topic}" if name else topic


def changelog(table: str, app: str = LIVE_APP_ID) -> str:
    """Faust's changelog topic of ``table`` in the app with id ``app``."""
    return f"{app}-{table}-changelog"
