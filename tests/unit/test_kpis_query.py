"""``GET /v1/kpis`` parameters (``web.kpis.parse_query``, the clock passed in): defaults,
alignment to the window start, and a field error for each kind of bad value."""
from __future__ import annotations

import pytest

from web.kpis import parse_query

NOW = 1_767_225_600_000 + 90_000  # 2026-01-01T00:01:30Z
MIN, DAY = 60_000, 86_400_000


def test_defaults_and_alignment():
    assert parse_query({}, NOW) == (("1m", NOW - 3600_000 - 30_000, NOW), None)
    assert parse_query({"window": "1d"}, NOW) == (("1d", 1_767_225_600_000 - 30 * DAY, NOW), None)
    iso = {"window": "1m", "from": "2026-01-01T00:00:59.999Z", "to": "2026-01-01T00:10:00+00:00"}
    assert parse_query(iso, NOW) == (("1m", 1_767_225_600_000, 1_767_225_600_000 + 10 * MIN), None)
    most = {"window": "1d", "from": str(NOW - 89 * DAY), "to": str(NOW)}
    assert parse_query(most, NOW)[1] is None
    # Any span is fine (schemathesis found the old "at most what is kept" 400 undocumentable):
    # the answer walks the rows held, so centuries cost no more than an hour.
    wide = {"window": "1m", "from": "0251-06-24T03:49:50+19:01", "to": "4781-10-10T07:48:07Z"}
    assert parse_query(wide, NOW)[1] is None
    # from at or after to: an empty range (no window starts in it), not an error
    (window, start, to), errors = parse_query({"from": "2000", "to": "1000"}, NOW)
    assert errors is None and start >= to


@pytest.mark.parametrize("query, field", [
    ({"window": "1h"}, "window"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-01-01T00:00:00"}, "to"),  # no zone
    ({"to": "-5"}, "to"),
])
def test_bad_values_name_the_field(query, field):
    params, errors = parse_query(query, NOW)
    assert params is None and list(errors) == [field], errors
