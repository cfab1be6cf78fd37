"""JSON answers shared by the views: 200 via orjson with an ETag, 304, 404, the id check.

``reused`` gives the encoded answer again while the sources of a customer's documents are
the same objects (``tables.documents.source``: the write-back's overlays and read cache
hold one object per value), so a repeated lookup of an unchanged customer skips decoding,
building, encoding and hashing the answer; ``ok_of`` builds one and keeps it.

Conditional reads: every state answer carries ``ETag`` (a hash of the exact body bytes, so
it changes whenever the answer changes and only then) and ``Cache-Control: private,
no-cache`` (a cache must revalidate; shared caches must not keep customer data). A request
whose ``If-None-Match`` names the current tag gets 304 with no body.
"""
from __future__ import annotations

import hashlib

import orjson

from app.rules.events import ID_HINT, valid_id


def bad_customer_id(view, customer_id: str):
    """A 400 with the field error if ``customer_id`` breaks the id rule, else None."""
    if not valid_id(customer_id):
        return view.json({"error": "invalid request", "fields": {"customer_id": [ID_HINT]}},
                         status=400)
    return None


CACHE_CONTROL = "private, no-cache"


def etag_of(data: bytes) -> str:
    """A strong entity tag of the body bytes (orjson output is deterministic for a dict)."""
    return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against ``tag`` (``*`` matches all)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in if_none_match.split(","))


def ok(view, body: dict, request=None):
    """A 200 JSON answer (orjson) with ETag, or 304 if the request already has this answer."""
    data = orjson.dumps(body)
    return ok_bytes(view, data, etag_of(data), request)


#: ``(route, customer id, variant)`` -> (the documents an answer was built from, its body,
#: its ETag). Emptied when it reaches ``ANSWERS_MAX`` entries.
_answers: dict = {}
ANSWERS_MAX = 20_000


def reused(view, request, key: tuple, sources: tuple):
    """The last answer for ``key`` again (its bytes and ETag, nothing built, decoded or
    encoded) if it was built from these very ``sources`` (``tables.documents.source``:
    an overlay's or the read cache's document, or the store's bytes); else None.

    Sound because the views are pure functions of the documents (no clock), a source is
    never mutated (a change is a new object), and the entry holds the sources, so their ids
    cannot be reused by other objects. Only ``ok`` answers are kept (``ok_of``)."""
    hit = _answers.get(key)
    if hit is not None and len(hit[0]) == len(sources) and all(
            a is b for a, b in zip(hit[0], sources, strict=True)):
        return ok_bytes(view, hit[1], hit[2], request)
    return None


def ok_of(view, request, key: tuple, sources: tuple, build):
    """``ok`` of ``build()``, kept for ``reused`` with the ``sources`` it was built from."""
    data = orjson.dumps(build())
    tag = etag_of(data)
    if len(_answers) >= ANSWERS_MAX:
        _answers.clear()
    _answers[key] = (sources, data, tag)
    return ok_bytes(view, data, tag, request)


def ok_bytes(view, data: bytes, tag: str, request=None):
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if request is not None and matches(request.headers.get("If-None-Match"), tag):
        return view.bytes(b"", status=304, headers=headers)
    return view.bytes(data, content_type="application/json", headers=headers)


def not_found(view, customer_id: str, merged_into: str | None = None):
    """404; for an anonymous id merged into a customer, which one (``merged_into``)."""
    body = {"error": "not found", "customer_id": customer_id}
    if merged_into:
        body["merged_into"] = merged_into
    return view.json(body, status=404)
