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


def test_ok_of_reuses_the_answer_while_the_documents_are_the_same_objects():
    from web import responses
    built = []
    doc = {"customer_id": "c9", "as_of": 1}

    def build_from(d):
        return lambda: built.append(1) or {"view": d["as_of"]}

    first = responses.ok_of(View(), request(), ("profile", "c9"), (doc,), build_from(doc))
    again = responses.ok_of(View(), request(), ("profile", "c9"), (doc,), build_from(doc))
    assert built == [1] and again.body is first.body and again.headers == first.headers
    same_value = dict(doc)  # equal but another object (a store read): built again
    third = responses.ok_of(View(), request(), ("profile", "c9"), (same_value,),
                            build_from(same_value))
    assert built == [1, 1] and third.body == first.body
    changed = {**doc, "as_of": 2}
    fourth = responses.ok_of(View(), request(**{"If-None-Match": first.headers["ETag"]}),
                             ("profile", "c9"), (changed,), build_from(changed))
    assert fourth.status == 200 and orjson.loads(fourth.body) == {"view": 2}
    cached = responses.ok_of(View(), request(**{"If-None-Match": fourth.headers["ETag"]}),
                             ("profile", "c9"), (changed,), build_from(changed))
    assert cached.status == 304 and built == [1, 1, 1]
    other_key = responses.ok_of(View(), request(), ("activity", "c9"), (changed,),
                                build_from(changed))
    assert other_key.status == 200 and built == [1, 1, 1, 1]  # routes do not share answers
