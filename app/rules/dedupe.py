"""The recent event ids a state remembers, compact: how the rules tell a redelivery.

Each state (session, profile) keeps the ids of its last ``max_ids`` events, so an event
delivered again (an at-least-once producer's retry, a replay) changes nothing. They were
kept as the ids themselves (36-character UUIDs, up to 128 characters), ~30 % of a stored
value and of every changelog record and restore. Now each is an 11-character tag: the
first 64 bits of BLAKE2b of the id, base64url (``seen``). Same guarantee: an event whose id
is among the last ``max_ids`` is a duplicate; the only new way to be wrong is two different
ids of one customer colliding in 64 bits within that window (p ≈ 256² / 2⁶⁵ ≈ 2·10⁻¹⁵ per
customer), which would drop the newer event as a duplicate. Positions (``_pos`` in
agents/customers.py) still tell redeliveries beyond the window.

States written before (``event_ids``) are read as they are and converted the first time
they change. Pure: no Faust, no settings, no clock.
"""
from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from functools import lru_cache

KEY = "seen"
LEGACY = "event_ids"


@lru_cache(maxsize=4096)  # one event is looked up and remembered by both states
def tag(event_id: str) -> str:
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return urlsafe_b64encode(digest)[:11].decode("ascii")


def seen(state: dict, event_id: str) -> bool:
    """Is ``event_id`` among the ids ``state`` remembers (tags, or a legacy id list)?"""
    if LEGACY in state and event_id in state[LEGACY]:
        return True
    return tag(event_id) in state.get(KEY, ())


def remember(new: dict, base: dict, event_id: str, max_ids: int) -> None:
    """Set ``new``'s remembered ids: ``base``'s plus this event's, the newest ``max_ids``."""
    tags = base.get(KEY)
    if tags is None:
        tags = [tag(i) for i in base.get(LEGACY, ())]
        new.pop(LEGACY, None)
    new[KEY] = (tags + [tag(event_id)])[-max_ids:]
