"""One customer's state while the customers agent applies a batch, and what one event does to it.

``Pending`` holds a customer's session and profile (read once per batch, the write-back's
overlays first); ``apply_event`` applies one valid event or internal command with the pure
rules and collects the webhook requests it fires; ``decided`` is what the write-back then
puts per table. Redeliveries are told by position (``POS``, below). Internal commands:
``erase`` (both documents deleted, pending deliveries cancelled), ``session_timeout`` (the
abandoned-cart scan's re-check) and ``reconcile`` (``persona-reconcile --repair``: a
compare-and-set replacement, ``app.rules.reconcile``; fires no webhooks).
"""
from __future__ import annotations

import logging
import time

from agents.writeback import KEEP
from app.rules import alias, dedupe, profile_state, reconcile, session_state, triggers
from app.rules.events import ERASE, RECONCILE, SESSION_TIMEOUT
from app.settings import settings
from app.webhooks import erasure, formats
from tables.documents import read
from tables.profiles import profiles
from tables.sessions import sessions

log = logging.getLogger(__name__)
SUBSCRIPTIONS = settings.webhooks  # validated by app.settings before the worker starts


class Pending:
    """One customer's state while a batch is applied; handed to the write-back at its end."""

    __slots__ = ("session", "profile", "record", "dirty_session", "dirty_profile", "erased",
                 "marker", "partition", "key")

    def __init__(self, cid: str, partition: int, key: bytes = b""):
        """``partition``, ``key``: the customer's partition and record key, as the agent
        checked them on its first record of the batch (later ones with the same need no
        check). ``record``: its last record applied (the write-back's changelog partition)."""
        self.partition, self.key = partition, key
        self.session = read(sessions, cid, partition)
        self.profile = read(profiles, cid, partition)
        self.record = self.marker = None
        self.dirty_session = self.dirty_profile = self.erased = False


#: Key in each stored document: ``[partition, offset]`` of the last ``events`` record folded
#: into it. Events of one customer share a partition and arrive in offset order, so a
#: record at or below it is a redelivery (after a crash before the commit) whatever the
#: rules' bounded event-id memory still holds: no count grows twice, however many events
#: one customer had since the last commit. The views never show it.
POS = reconcile.POS


def applied_before(doc, record) -> bool:
    pos = doc.get(POS) if doc else None
    return pos is not None and pos[0] == record.partition and record.offset <= pos[1]


def apply_event(p: Pending, ev: dict, idle_ms: int, outbox: list, message) -> bool:
    """Apply one valid event to a customer's pending state (pure rules + triggers).

    ``message`` (the Kafka record, ``app.kafka.intake``) tells a redelivery by position (``POS``). True if the
    event was a redelivery (by position or by its id in the profile): a no-op."""
    cid = ev["customer_id"]
    if ev["type"] == ERASE:  # its marker cancels earlier deliveries (tables/erasures.py)
        p.marker = erasure.marker(cid, message.partition, message.offset,
                                  int(time.time() * 1000))
        p.session = p.profile = None
        p.erased, p.dirty_session, p.dirty_profile = True, False, False
        return False
    if ev["type"] == SESSION_TIMEOUT:  # from the abandoned-cart scan; never touches the profile
        new_session, fired = triggers.on_session_timeout(p.session, ev, idle_ms)
        outbox.extend(outbox_requests(ev, fired, message))
        if new_session is not p.session:
            p.session, p.dirty_session = new_session, True
        return False
    if ev["type"] == RECONCILE:  # persona-reconcile --repair: compare-and-set, no webhooks
        p.session, p.profile, replaced = reconcile.repair(p.session, p.profile, ev)
        log.info("reconcile %s: replaced %s", ev["customer_id"], replaced or "nothing (changed)")
        p.dirty_session |= "sessions" in replaced
        p.dirty_profile |= "profiles" in replaced
        p.erased |= any(ev["tables"][name]["state"] is None for name in replaced)
        return False
    seen_s, seen_p = applied_before(p.session, message), applied_before(p.profile, message)
    new_session = p.session if seen_s else session_state.apply_to_session(p.session, ev, idle_ms)
    new_profile = p.profile if seen_p else profile_state.apply_to_profile(p.profile, ev,
                                                                          new_session, idle_ms)
    if new_profile is not p.profile:  # an anonymous id logs its events for an alias
        new_profile = alias.record(new_profile, ev)
    if SUBSCRIPTIONS:
        fired = triggers.triggered(p.session, new_session, p.profile, new_profile, ev, idle_ms)
        outbox.extend(outbox_requests(ev, fired, message))
    # A redelivered event changes nothing, but after a kill -9 the local RocksDB can hold
    # state whose changelog record was never sent: write it again so the changelog (and
    # any worker restoring from it) catches up. ``decided`` stamps the rewrite with its
    # position, so it is a shallow copy: the unchanged document is shared with the
    # overlays, the read cache and cached answers, which are never mutated.
    redelivered = seen_s or seen_p or (p.profile is not None
                                       and dedupe.seen(p.profile, ev["event_id"]))
    if new_session is not p.session or (redelivered and new_session is not None):
        p.session = dict(new_session) if new_session is p.session else new_session
        p.dirty_session = True
    if new_profile is not p.profile or (redelivered and new_profile is not None):
        p.profile = dict(new_profile) if new_profile is p.profile else new_profile
        p.dirty_profile = True
    return redelivered


def outbox_requests(ev: dict, fired: list, message) -> list:
    if not (fired and SUBSCRIPTIONS):
        return []
    return formats.delivery_requests(SUBSCRIPTIONS, ev, fired, int(time.time() * 1000),
                                     [message.partition, message.offset])


def decided(p: Pending) -> tuple:
    """What the write-back puts for one customer: per table a document, None or KEEP.

    Each document written is stamped with the position of the customer's last event,
    unless it holds a later one already (a redelivered batch rewrites, never moves back).
    A dirty None (an erase, or an aliased id's session) is deleted."""
    message = p.record
    if message is not None:
        for doc, dirty in ((p.session, p.dirty_session), (p.profile, p.dirty_profile)):
            if dirty and doc is not None and not applied_before(doc, message):
                doc[POS] = [message.partition, message.offset]
    return tuple(value if value is not None and dirty else None if value is None and (
                 p.erased or dirty) else KEEP for value, dirty in ((p.session, p.dirty_session),
                                                                   (p.profile, p.dirty_profile)))
