"""Send a per-customer read to the worker that owns the customer's partition.

Like faust's ``table_route`` (same assignor lookup, Authorization forwarded), but
it never serves a table default as truth (faust-streaming #187, #514):
- an owner whose partition is not assigned to it or not yet restored answers 503
  with Retry-After, and so does one that took the partition over and has not yet applied
  its events up to where they stood then (after waiting up to a second, or the token's
  ``wait_ms``), so reads never go back in time across a takeover;
- a forward to a peer that is down or slow is retried once against the (possibly
  new) assignment, then answered 503;
- a forwarded request is never forwarded again (no ping-pong while two workers
  disagree about the assignment);
- a worker whose group membership the coordinator has not confirmed for longer than the
  group session timeout (cut off from the brokers: ``app.rules.staleness``) answers 503
  for every routed read, its own partitions and forwards alike: by then the group may have
  given its partitions to others, and its view of the assignment is as old as that.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time

import aiohttp
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from yarl import URL

from app.consistency.applied import applied
from app.kafka import contact
from app.kafka.internals import fetched_highwater, fully_restored, owner_url
from app.main import app
from app.rules.staleness import contact_age
from app.settings import settings
from app.topics import outputs_declared, partition_of
from web.positions import EVENTS, floor, until_applied

log = logging.getLogger(__name__)
FORWARDED = "X-Persona-Forwarded"
#: Request key with how a read was routed, for the HTTP metrics (``web.metrics``):
#: ``local``, ``forwarded`` (sent on to the owner), ``for_peer`` (answered for a
#: forwarding peer); unset (views that are not routed): ``local``.
ROUTING = "persona.routing"
RETRY_AFTER_S = 1
FORWARD_TIMEOUT_S = 5.0
#: How long a read without a token waits for a just-taken-over partition to catch up.
CATCH_UP_WAIT_S = 1.0
#: What a forwarded read carries to the owner, and what the owner's answer carries back.
FORWARD_REQUEST_HEADERS = ("Authorization", "If-None-Match")
FORWARD_RESPONSE_HEADERS = ("Retry-After", "ETag", "Cache-Control")
# Workers verify each other's certificate against PERSONA_TLS_CA when TLS is on.
# What workers pass as ``ssl=`` when forwarding to each other (own CA for self-signed setups).
PEER_SSL = ssl.create_default_context(cafile=settings.tls_ca) if settings.tls_ca else True


def unavailable(view, detail: str):
    return view.json({"error": "unavailable", "detail": detail}, status=503,
                     headers={"Retry-After": str(RETRY_AFTER_S)})


#: How long a worker may go on answering as owner without the coordinator confirming its
#: membership: the group session timeout, after which the group drops it.
STALENESS_BOUND_S = settings.group_session_timeout_s


def in_contact() -> bool:
    """The coordinator confirmed this worker's membership within the bound (one float
    comparison per read)."""
    return contact.in_contact(STALENESS_BOUND_S)


def out_of_contact(view):
    """503 for a worker past the bound, with the age of its last confirmation."""
    age = contact_age(contact.last, time.monotonic())
    said = "never" if age is None else f"{age:g} s ago"
    return unavailable(view, f"no contact with the Kafka group (last {said}, bound "
                             f"{STALENESS_BOUND_S:g} s): this worker cannot vouch for its data")


def _tp_of(table, key: str):
    """The changelog TP of ``key``; None while the partition count is not known.

    Faust's ``router.key_store`` hashes with the producer's metadata, which has no
    entry for a topic the worker has not produced to yet; the consumer's has.
    """
    topic = table.changelog_topic.get_topic_name()
    try:
        partition = partition_of(topic, key.encode())
    except ConsumerNotStarted:  # a worker still starting: 503, like any unknown assignment
        return None
    return None if partition is None else TP(topic, partition)


def _owner_and_tp(table, key: str):
    """(owner URL, changelog TP) of ``key``; None if the assignment is not known."""
    tp = _tp_of(table, key)
    url = owner_url(app, tp) if tp is not None else None
    return (parsed_url(url), tp) if url else None


@functools.cache
def parsed_url(url: str) -> URL:
    """A worker's URL, parsed once (one per worker of the group), not per read."""
    return URL(url)


def worker_ready() -> bool:
    """First recovery done, no rebalance running, not stopping, output topics created
    (also ``GET /ready``).

    ``rebalancing`` spans revocation .. end of recovery of the new assignment;
    ``completed`` only covers the first recovery; a stopping worker's stores close.
    """
    return (app.tables.recovery.completed.is_set() and not app.rebalancing
            and not app.should_stop and outputs_declared.is_set())


def owns(tp: TP) -> bool:
    """True if this worker owns ``tp`` and has fully restored it."""
    if not worker_ready() or not app.assignor.is_active(tp):
        return False
    return fully_restored(app, tp)


def caught_up(tp: TP) -> bool:
    """True once this worker has applied ``tp``'s events up to where they stood when it took
    the partition over (``applied.caught_up``): the previous owner may have served states
    it never flushed, which the restore does not hold."""
    return applied.caught_up(tp.partition, floor(tp.partition),
                             fetched_highwater(app, TP(EVENTS, tp.partition)))


def serving(tp: TP) -> bool:
    """Owned, restored and caught up: what this worker may answer for ``tp``."""
    return owns(tp) and caught_up(tp)


#: Changelog TP -> Faust's rebalance count when this worker last found itself ``serving``
#: it. Owning, restored and caught up only change with a rebalance (each one counts, and
#: none of them is read while one runs), so until the next one a read of that partition
#: skips the owner lookup and those checks: they were a fifth of an idle lookup's CPU.
#: Contact with the group is still checked on every read, and stopping too.
_SERVING: dict = {}


def _serving_here(table, key: str):
    """The partition of ``key`` if this worker was found serving it since the last
    rebalance (``_SERVING``), else None (the full checks decide)."""
    if app.rebalancing or app.should_stop or not _SERVING:
        return None
    tp = _tp_of(table, key)
    return tp.partition if tp is not None and _SERVING.get(tp) == app.rebalancing_count else None


def _remember_serving(tp: TP, count: int) -> None:
    """``tp`` found serving by checks that began at rebalance count ``count``: kept unless a
    rebalance began since (the consumer thread sets ``rebalancing`` and then counts)."""
    if not app.rebalancing and app.rebalancing_count == count:
        _SERVING[tp] = count


async def until_caught_up(tp: TP, wait_s: float) -> bool:
    """Wait up to ``wait_s`` for ``tp`` to be caught up (False if it is not, or moved)."""
    deadline = time.monotonic() + wait_s
    while not caught_up(tp):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not owns(tp):
            return False
        target = applied.targets.get(tp.partition)
        if target is None:  # no fetch answered yet: it comes within the fetch wait
            await asyncio.sleep(min(0.05, remaining))
        else:
            await applied.wait(tp.partition, target, remaining, lambda: floor(tp.partition))
    return True


def _is_self(url) -> bool:
    return (url.host, url.port) == _own_address()


@functools.cache
def _own_address() -> tuple:
    """This worker's (host, port): its canonical URL is fixed once the app is configured."""
    me = app.conf.canonical_url
    return me.host, me.port


async def _forward(view, request, url, wait_s: float = 0.0):
    # the query string (``?after=``, ``&wait_ms=``, ``?limit=``) goes with the request
    target = request.url.with_host(url.host).with_port(url.port)
    headers = {FORWARDED: "1"}
    for name in FORWARD_REQUEST_HEADERS:
        if name in request.headers:
            headers[name] = request.headers[name]
    timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S + wait_s)
    async with app.http_client.request(request.method, target, headers=headers,
                                       timeout=timeout, ssl=PEER_SSL) as resp:
        body = await resp.read()
        # resp.headers is case-insensitive; the wire may say "Etag" for "ETag".
        out = {k: resp.headers[k] for k in FORWARD_RESPONSE_HEADERS if k in resp.headers}
        return view.bytes(body, content_type=resp.content_type, status=resp.status,
                          headers=out)


async def routed(view, request, table, key: str, answer, want=None):
    """Answer ``answer(partition)`` here if this worker owns ``key`` (in ``partition``),
    else forward it.

    ``want`` (``web.positions.Wanted``, from ``?after=``): the owner answers only once it
    has applied the customer's partition up to the token, else 503 (``until_applied``)."""
    if not in_contact():
        return out_of_contact(view)
    if want is None:
        partition = _serving_here(table, key)
        if partition is not None:
            request[ROUTING] = "for_peer" if request.headers.get(FORWARDED) else "local"
            return answer(partition)
    for attempt in (1, 2):
        owner = _owner_and_tp(table, key)
        if owner is None:
            return unavailable(view, "partition assignment not known yet")
        url, tp = owner
        count = app.rebalancing_count  # before the checks: see _remember_serving
        if _is_self(url) or request.headers.get(FORWARDED):
            request[ROUTING] = "for_peer" if request.headers.get(FORWARDED) else "local"
            if not owns(tp):
                return unavailable(view, "partition is being restored or moved")
            if want is None and caught_up(tp):  # nothing awaited: the checks above hold
                _remember_serving(tp, count)
                return answer(tp.partition)
            if want is not None:
                late = await until_applied(view, want)
                if late is not None:
                    return late
            if not await until_caught_up(tp, want.wait_s if want else CATCH_UP_WAIT_S):
                return unavailable(view, "partition is catching up with the events its "
                                         "previous owner had applied")
            if not owns(tp):  # moved away while waiting
                return unavailable(view, "partition is being restored or moved")
            if not in_contact():  # cut off while waiting
                return out_of_contact(view)
            return answer(tp.partition)
        request[ROUTING] = "forwarded"
        try:
            return await _forward(view, request, url, want.wait_s if want else 0.0)
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as exc:
            # RuntimeError: this worker is shutting down and its client session closed.
            log.warning("forward to %s failed (attempt %s): %r", url, attempt, exc)
            await asyncio.sleep(0.5)
    return unavailable(view, "owner of this customer is not reachable")
