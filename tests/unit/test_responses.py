"""web.responses: ETag and 304 logic (the real routes are tested end to end)."""
from __future__ import annotations

from types import SimpleNamespace

import orjson

from web.responses import CACHE_CONTROL, etag_of, matches, ok


class View:
    def bytes(self, data, content_type=None, status=200, headers=None):
        return SimpleNamespace(body=data, content_type=content_type, status=status,
                               headers=headers)


def request(**headers):
    return SimpleNamespace(headers=headers)


def test_etag_changes_with_the_answer_and_only_then():
    a, b = {"x": 1, "as_of": 5}, {"x": 2, "as_of": 5}
    assert etag_of(orjson.dumps(a)) == etag_of(orjson.dumps(dict(a)))
    assert etag_of(orjson.dumps(a)) != etag_of(orjson.dumps(b))
    assert etag_of(b"{}").startswith('"') and etag_of(b"{}").endswith('"')


def test_200_carries_etag_and_cache_control_and_304_has_no_body():
    body = {"customer_id": "c1", "as_of": 7}
    first = ok(View(), body, request())
    tag = first.headers["ETag"]
    assert first.status == 200 and orjson.loads(first.body) == body
    assert first.headers["Cache-Control"] == CACHE_CONTROL == "private, no-cache"
    again = ok(View(), body, request(**{"If-None-Match": tag}))
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == tag
    changed = ok(View(), {**body, "as_of": 8}, request(**{"If-None-Match": tag}))
    assert changed.status == 200 and changed.headers["ETag"] != tag


def test_if_none_match_lists_weak_tags_and_star():
    tag = '"abc"'
    assert matches('"zzz", W/"abc"', tag) and matches("*", tag)
    assert not matches('"zzz"', tag) and not matches(None, tag) and not matches("", tag)


def test_an_answer_is_reused_while_its_sources_are_the_same_objects():
    """``reused`` then ``ok_of``, as the views do, with the store's bytes and an
    overlay's document as sources (``tables.documents.source``)."""
    from web import responses
    built = []

    def answer(key, sources, req=None):
        hit = responses.reused(View(), req or request(), key, sources)
        if hit is not None:
            return hit
        doc = orjson.loads(sources[0]) if isinstance(sources[0], bytes) else sources[0]
        return responses.ok_of(View(), req or request(), key, sources,
                               lambda: built.append(1) or {"view": doc["as_of"]})

    raw = b'{"customer_id": "c9", "as_of": 1}'  # cached bytes: one object while unchanged
    first = answer(("profile", "c9"), (raw,))
    again = answer(("profile", "c9"), (raw,))
    assert built == [1] and again.body is first.body and again.headers == first.headers
    same_value = bytes(bytearray(raw))  # equal but another object (a store read): built again
    third = answer(("profile", "c9"), (same_value,))
    assert built == [1, 1] and third.body == first.body
    changed = {"customer_id": "c9", "as_of": 2}  # an overlay's document
    fourth = answer(("profile", "c9"), (changed,), request(**{"If-None-Match": first.headers["ETag"]}))
    assert fourth.status == 200 and orjson.loads(fourth.body) == {"view": 2}
    cached = answer(("profile", "c9"), (changed,),
                    request(**{"If-None-Match": fourth.headers["ETag"]}))
    assert cached.status == 304 and built == [1, 1, 1]
    other_key = answer(("activity", "c9"), (changed,))
    assert other_key.status == 200 and built == [1, 1, 1, 1]  # routes do not share answers
