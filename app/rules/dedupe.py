"""The recent event ids a state remembers, compact: how the rules tell a redelivery.

Each state (session, profile) keeps the ids of its last ``max_ids`` events, so an event
delivered again (an at-least-once producer's retry, a replay) changes nothing. Each id is
kept as an 11-character tag: the first 64 bits of BLAKE2b of the id, base64url (``tag``).
The only way to be wrong that the ids themselves would not have is two different ids of
one customer colliding in 64 bits within the window (p ≈ 256² / 2⁶⁵ ≈ 2·10⁻¹⁵ per
customer), which would drop the newer event as a duplicate. Positions (``_pos`` in
agents/customer_state.py) still tell redeliveries beyond the window.

The tags are stored packed, oldest first, in one string (``seen``): every event looks its
id up and appends it, and a list of 256 strings cost a compare per element and two list
copies per event (the largest share of the rules' time on customers with a history), a
string one substring search and one copy; it also encodes and decodes as one JSON string.
A match counts only at a multiple of the tag width, so a tag spanning two others is never
taken for one.

Older forms are read as they are and converted the first time the state changes: a list
of tags, and before it the ids themselves (``event_ids``). Pure: no Faust, no settings,
no clock.
"""
from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from functools import lru_cache

KEY = "seen"
LEGACY = "event_ids"
WIDTH = 11  # characters per tag
EMPTY = ""


@lru_cache(maxsize=4096)  # one event is looked up and remembered by both states
def tag(event_id: str) -> str:
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return urlsafe_b64encode(digest)[:11].decode("ascii")


def _holds(packed: str, wanted: str) -> bool:
    at = packed.find(wanted)
    while at >= 0:
        if at % WIDTH == 0:
            return True
        at = packed.find(wanted, at + 1)
    return False


def seen(state: dict, event_id: str) -> bool:
    """Is ``event_id`` among the ids ``state`` remembers (packed tags, or an older form)?"""
    tags = state.get(KEY)
    if tags.__class__ is str:
        return _holds(tags, tag(event_id))
    if LEGACY in state and event_id in state[LEGACY]:
        return True
    return tag(event_id) in (tags or ())


def count(state: dict) -> int:
    """How many ids ``state`` remembers."""
    tags = state.get(KEY)
    if tags.__class__ is str:
        return len(tags) // WIDTH
    return len(tags) if tags is not None else len(state.get(LEGACY, ()))


def remember(new: dict, base: dict, event_id: str, max_ids: int) -> None:
    """Set ``new``'s remembered ids: ``base``'s plus this event's, the newest ``max_ids``."""
    packed = base.get(KEY)
    if packed.__class__ is not str:
        tags = packed if packed is not None else [tag(i) for i in base.get(LEGACY, ())]
        packed = "".join(tags)
        new.pop(LEGACY, None)
    packed += tag(event_id)
    if len(packed) > max_ids * WIDTH:
        packed = packed[-max_ids * WIDTH:]
    new[KEY] = packed
