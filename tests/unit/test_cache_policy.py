"""
The rules of the shared cache (RFC 9111, RFC 5861), table by table.
"""

from __future__ import annotations

import time

import pytest

from txrevproxy.cache import policy
from txrevproxy.cache.policy import (
    FRESH,
    REVALIDATE,
    STALE,
    STALE_REVALIDATE,
    Timing,
)

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
DATE_SECONDS = 784111777.0


def fields(text: str):
    """
    Header fields from C{"Name: value"} lines.
    """
    pairs = []
    for line in text.strip().splitlines():
        name, _, value = line.partition(":")
        pairs.append((name.strip().encode(), value.strip().encode()))
    return pairs


@pytest.mark.parametrize(
    "value",
    [DATE, b"Sunday, 06-Nov-94 08:49:37 GMT", b"Sun Nov  6 08:49:37 1994"],
)
def test_the_three_date_forms(value):
    """
    RFC 9110 section 5.6.7: IMF-fixdate, and the obsolete RFC 850 and
    asctime forms, all in UTC.
    """
    assert policy.http_date(value) == DATE_SECONDS


@pytest.mark.parametrize(
    "value, seconds",
    [
        (b"Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        (b"Mon, 29 Feb 2016 23:59:59 GMT", 1456790399.0),
        (b"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0),
        (b"Sat, 01 Jan 2000 00:00:60 GMT", 946684860.0),  # a leap second
        (b"Sunday, 06-Nov-94 08:49:37 GMT", DATE_SECONDS),
        (b"Tuesday, 29-Feb-00 12:00:00 GMT", 951825600.0),
        (b"Thu Jan  1 00:00:00 1970", 0.0),
        (b"Sun Nov 16 08:49:37 1994", DATE_SECONDS + 10 * 86400),
        # The day name is not checked against the date.
        (b"Mon, 06 Nov 1994 08:49:37 GMT", DATE_SECONDS),
    ],
)
def test_valid_dates(value, seconds):
    assert policy.http_date(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        b"0",
        b"-1",
        b"",
        b"yesterday",
        None,
        b"Sun, 06 Nov 1994 08:49:37 UTC",  # only GMT
        b"Sun, 06 Nov 1994 08:49:37 +0000",
        b"Sun, 06 Nov 1994 08:49:37 PST",
        b"Sun, 06 Nov 1994 08:49:37 gmt",  # case-sensitive
        b"Sun, 06 Nov 1994 08:49:37",  # no zone
        b"Sun, 06 Nov 94 08:49:37 GMT",  # two-digit year in IMF-fixdate
        b"Sun 06 Nov 1994 08:49:37 GMT",  # no comma
        b"Sun,  06 Nov 1994 08:49:37 GMT",  # extra spaces
        b"Sun, 06  Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994  08:49:37 GMT",
        b" Sun, 06 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT ",
        b"Sun, 06-Nov-1994 08:49:37 GMT",  # dashes in IMF-fixdate
        b"Sunday, 06 Nov 94 08:49:37 GMT",  # no dashes in RFC 850
        b"Sun, 06.Nov.1994 08:49:37 GMT",  # periods
        b"Sun, 06 Nov 1994 08.49.37 GMT",
        b"Sun, 06 Nov 1994 8:49:37 GMT",  # one-digit hour
        b"Sun, 6 Nov 1994 08:49:37 GMT",  # one-digit day
        b"Sun, 06 nov 1994 08:49:37 GMT",  # month case
        b"sun, 06 Nov 1994 08:49:37 GMT",
        b"Sunday, 06 Nov 1994 08:49:37 GMT",  # long name in IMF-fixdate
        b"Sun, 06-Nov-94 08:49:37 GMT",  # short name in RFC 850
        b"Sun, 31 Nov 1994 08:49:37 GMT",  # no such day
        b"Sun, 29 Feb 1900 08:49:37 GMT",
        b"Sun, 06 Nov 1994 24:00:00 GMT",
        b"Sun, 06 Nov 1994 08:60:37 GMT",
        b"Sun, 06 Nov 1994 08:49:61 GMT",
        b"Sun, 00 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 0000 08:49:37 GMT",
        b"Sun Nov 6 08:49:37 1994",  # asctime pads the day with a space
        b"Sun Nov 06 08:49:37 1994 GMT",
        b"Sun Nov  6 08:49:37 94",
        b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",  # a list
        b"Sun, \xd9\xa0\xd9\xa6 Nov 1994 08:49:37 GMT",  # non-ASCII digits
    ],
)
def test_invalid_dates(value):
    """
    Anything but the three forms, exactly: RFC 9111 section 5.3 has a
    cache read each of these Expires values as a time in the past.
    """
    assert policy.http_date(value) is None
    if value is not None:
        headers = [(b"Date", DATE), (b"Expires", value), (b"Cache-Control", b"public")]
        assert policy.freshness_lifetime(200, headers, 60.0) == 0.0


def test_rfc850_years_are_never_more_than_50_years_ahead():
    """
    RFC 9110 section 5.6.7: a two-digit year that would be more than 50
    years in the future is in the past century.
    """
    this_year = time.gmtime().tm_year
    ahead = (this_year + 51) % 100
    behind = (this_year + 49) % 100
    parsed = policy.http_date(b"Monday, 01-Jan-%02d 00:00:00 GMT" % (ahead,))
    assert time.gmtime(parsed).tm_year == this_year + 51 - 100
    parsed = policy.http_date(b"Monday, 01-Jan-%02d 00:00:00 GMT" % (behind,))
    assert time.gmtime(parsed).tm_year == this_year + 49


def test_several_expires_lines_are_stale():
    headers = [(b"Date", DATE), (b"Expires", b"Sun, 06 Nov 1994 09:49:37 GMT")]
    assert policy.freshness_lifetime(200, headers, 0) == 3600.0
    assert policy.freshness_lifetime(200, headers + headers[1:], 0) == 0.0


@pytest.mark.parametrize(
    "ages, received",
    [
        ([], 0),
        ([b"0"], 0),
        ([b"100"], 100),
        ([b"007"], 7),
        ([b"old, 0"], None),
        ([b"1, 2"], None),
        ([b"1", b"2"], None),
        ([b"-1"], None),
        ([b"1.5"], None),
        ([b""], None),
        ([b"1e3"], None),
        ([b"\xd9\xa1"], None),
    ],
)
def test_invalid_age_is_stale(ages, received):
    """
    RFC 9111 section 5.1: Age is one delta-seconds; an invalid one makes
    the stored response stale.
    """
    headers = [(b"Cache-Control", b"max-age=3600")] + [(b"Age", age) for age in ages]
    assert policy.received_age(headers) == received
    lifetime = policy.freshness_lifetime(200, headers, 0)
    assert lifetime == (3600.0 if received is not None else 0.0)
    age = policy.current_age(headers, Timing(1000.0, 1000.0), 1001.0)
    assert age == 1.0 + (received or 0)


@pytest.mark.parametrize(
    "cache_control",
    [b"max-age=60, immutable", b"immutable, s-maxage=60", b"max-age=60,immutable=x"],
)
def test_immutable_extends_nothing(cache_control):
    headers = [(b"Cache-Control", cache_control)]
    assert policy.freshness_lifetime(200, headers, 0) == 60.0
    directives = policy.response_cache_control(headers)
    assert policy.decide({}, directives, 60.0, 61.0) == REVALIDATE
    assert policy.decide({b"max-stale": None}, {b"immutable": None}, 0.0, 1.0) == STALE


def test_immutable_alone_is_no_lifetime():
    assert policy.freshness_lifetime(200, [(b"Cache-Control", b"immutable")], 0) == 0.0


@pytest.mark.parametrize(
    "cache_control, forbidden",
    [
        (b"max-age=0, must-revalidate", True),
        (b"max-age=0, proxy-revalidate", True),
        (b"s-maxage=0", True),
        (b"no-cache", True),
        (b'no-cache="set-cookie"', True),
        (b"max-age=0, must-revalidate, stale-if-error=600", True),
        (b"max-age=0, stale-if-error=600", False),
        (b"max-age=0", False),
    ],
)
def test_stale_forbidden(cache_control, forbidden):
    """
    These forbid a stale answer when the origin cannot be reached (RFC
    9111 sections 5.2.2.2, 5.2.2.4, 5.2.2.8, 5.2.2.10), even with
    stale-if-error.
    """
    directives = policy.parse_cache_control([cache_control])
    assert policy.stale_forbidden(directives) is forbidden
    assert policy.stale_if_error_allows({b"stale-if-error": b"600"}, directives, 0.0, 5.0) is (
        not forbidden
    )


def test_invalid_last_modified_is_no_validator():
    assert policy.validators([(b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 UTC")]) == []
    assert policy.validators([(b"Last-Modified", DATE)]) == [(b"If-Modified-Since", DATE)]


def test_parse_cache_control():
    assert policy.parse_cache_control(
        [b'max-age=60, No-Cache="Set-Cookie, X", s-maxage="30"', b"public, max-age=5"]
    ) == {
        b"max-age": b"60",
        b"no-cache": b"Set-Cookie, X",
        b"s-maxage": b"30",
        b"public": None,
    }


def test_pragma_no_cache_only_without_cache_control():
    assert policy.request_cache_control(fields("Pragma: no-cache")) == {b"no-cache": None}
    assert policy.request_cache_control(
        fields("Pragma: no-cache\nCache-Control: max-age=5")
    ) == {b"max-age": b"5"}


@pytest.mark.parametrize(
    "response, lifetime",
    [
        # RFC 9111 section 4.2.1: s-maxage first in a shared cache ...
        ("Cache-Control: max-age=60, s-maxage=30", 30.0),
        # ... then max-age, which beats Expires ...
        ("Cache-Control: max-age=60\nExpires: Sun, 06 Nov 1994 09:49:37 GMT\nDate: " + DATE.decode(), 60.0),
        # ... then Expires minus Date.
        ("Expires: Sun, 06 Nov 1994 09:49:37 GMT\nDate: " + DATE.decode(), 3600.0),
        # An invalid Expires ("0") means already expired (section 5.3).
        ("Expires: 0\nDate: " + DATE.decode(), 0.0),
        # Expires in the past.
        ("Expires: Sun, 06 Nov 1994 07:49:37 GMT\nDate: " + DATE.decode(), 0.0),
        # A bad max-age gives no freshness.
        ("Cache-Control: max-age=soon", 0.0),
        # Nothing explicit and no heuristic configured.
        ("Last-Modified: " + DATE.decode(), 0.0),
    ],
)
def test_freshness_lifetime(response, lifetime):
    assert policy.freshness_lifetime(200, fields(response), 0) == lifetime


@pytest.mark.parametrize(
    "status, response, lifetime",
    [
        (200, "Content-Type: text/plain", 120.0),
        (404, "Content-Type: text/plain", 120.0),
        # Not heuristically cacheable (RFC 9110 section 15.1) ...
        (302, "Content-Type: text/plain", 0.0),
        # ... unless public (RFC 9111 section 4.2.2).
        (302, "Cache-Control: public", 120.0),
        # Explicit expiration always wins over the heuristic.
        (200, "Cache-Control: max-age=5", 5.0),
    ],
)
def test_heuristic_freshness_only_where_allowed(status, response, lifetime):
    assert policy.freshness_lifetime(status, fields(response), 120.0) == lifetime


@pytest.mark.parametrize(
    "response, request_time, response_time, now, age",
    [
        # Just received, no Age, Date = response time.
        ("Date: " + DATE.decode(), DATE_SECONDS, DATE_SECONDS, DATE_SECONDS, 0.0),
        # Resident for 10 seconds.
        ("Date: " + DATE.decode(), DATE_SECONDS, DATE_SECONDS, DATE_SECONDS + 10, 10.0),
        # An upstream cache's Age, plus the response delay (section 4.2.3).
        ("Age: 100\nDate: " + DATE.decode(), DATE_SECONDS, DATE_SECONDS + 2, DATE_SECONDS + 2, 102.0),
        # A Date in the past makes an apparent age larger than Age.
        ("Age: 5\nDate: " + DATE.decode(), DATE_SECONDS + 60, DATE_SECONDS + 60, DATE_SECONDS + 61, 61.0),
        # A Date in the future counts as no apparent age.
        ("Date: " + DATE.decode(), DATE_SECONDS - 60, DATE_SECONDS - 60, DATE_SECONDS - 60, 0.0),
    ],
)
def test_current_age(response, request_time, response_time, now, age):
    timing = Timing(request_time, response_time)
    assert policy.current_age(fields(response), timing, now) == age


def uncacheable(status=200, response="", request="", method=b"GET", cookies=False, heuristic=False):
    return policy.uncacheable_reason(
        method,
        fields(request) if request else [],
        status,
        fields(response) if response else [],
        store_set_cookie=cookies,
        heuristic=heuristic,
    )


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (dict(response="Cache-Control: max-age=60"), None),
        (dict(response="Cache-Control: max-age=60", method=b"HEAD"), "method"),
        (dict(response="Cache-Control: max-age=60", method=b"POST"), "method"),
        # A 206 is stored only as the piece a range request asked for (see
        # test_cache_partial).
        (dict(status=206, response="Cache-Control: max-age=60"), "range"),
        (dict(status=304, response="Cache-Control: max-age=60"), "status"),
        # Non-final responses are never stored.
        (dict(status=100, response="Cache-Control: max-age=60"), "status"),
        (dict(status=103, response="Cache-Control: max-age=60"), "status"),
        # Any other final status is stored with an explicit lifetime
        # (RFC 9111 section 3), and only with one.
        (dict(status=500, response="Cache-Control: max-age=60"), None),
        (dict(status=299, response="Cache-Control: max-age=60"), None),
        (dict(status=599, response="Expires: " + DATE.decode()), None),
        (dict(status=400, response="ETag: \"a\""), "status"),
        (dict(status=499, response="Cache-Control: public"), "status"),
        (dict(status=400, response="Content-Type: text/plain", heuristic=True), "status"),
        # must-understand (section 5.2.2.3): only the statuses this cache
        # implements, and then no-store is for the caches that do not.
        (dict(status=299, response="Cache-Control: max-age=60, must-understand, no-store"), "must-understand"),
        (dict(status=500, response="Cache-Control: max-age=60, must-understand"), "must-understand"),
        (dict(response="Cache-Control: max-age=60, must-understand, no-store"), None),
        (dict(status=303, response="Cache-Control: max-age=60, must-understand"), None),
        (dict(response="Cache-Control: max-age=60, no-store", request="Cache-Control: no-store"), "request no-store"),
        (dict(response="Cache-Control: max-age=60, no-store"), "no-store"),
        (dict(response="Cache-Control: max-age=60", request="Cache-Control: no-store"), "request no-store"),
        (dict(response="Cache-Control: private, max-age=60"), "private"),
        (dict(response='Cache-Control: private="Set-Cookie", max-age=60'), "private"),
        # RFC 9111 section 3.5: Authorization needs public, s-maxage or
        # must-revalidate.
        (dict(response="Cache-Control: max-age=60", request="Authorization: Basic eDp5"), "authorization"),
        (dict(response="Cache-Control: public, max-age=60", request="Authorization: Basic eDp5"), None),
        (dict(response="Cache-Control: s-maxage=60", request="Authorization: Basic eDp5"), None),
        (dict(response="Cache-Control: max-age=60, must-revalidate", request="Authorization: Basic eDp5"), None),
        (dict(response="Cache-Control: max-age=60\nSet-Cookie: id=1"), "set-cookie"),
        (dict(response="Cache-Control: max-age=60\nSet-Cookie: id=1", cookies=True), None),
        (dict(response="Cache-Control: max-age=60\nVary: Accept, *"), "vary *"),
        # No explicit expiration: stored only with a validator or a
        # heuristic, and only for a heuristically cacheable status.
        (dict(response="Content-Type: text/plain"), "no expiration"),
        (dict(response="ETag: \"a\""), None),
        (dict(response="Content-Type: text/plain", heuristic=True), None),
        (dict(status=302, response="ETag: \"a\""), "no expiration"),
        (dict(status=302, response="Cache-Control: max-age=5"), None),
        (dict(response="Cache-Control: no-cache"), None),
    ],
)
def test_storability(arguments, reason):
    assert uncacheable(**arguments) == reason


@pytest.mark.parametrize(
    "request_cc, response_cc, lifetime, age, decision",
    [
        ("", "", 60, 10, FRESH),
        ("", "", 60, 60, REVALIDATE),
        # Request directives (RFC 9111 section 5.2.1).
        ("no-cache", "", 60, 10, REVALIDATE),
        ("max-age=5", "", 60, 10, REVALIDATE),
        ("max-age=10", "", 60, 10, FRESH),
        ("min-fresh=55", "", 60, 10, REVALIDATE),
        ("min-fresh=50", "", 60, 10, FRESH),
        ("max-stale", "", 60, 1000, STALE),
        ("max-stale=100", "", 60, 100, STALE),
        ("max-stale=10", "", 60, 100, REVALIDATE),
        # Response directives (section 5.2.2).
        ("", "no-cache", 60, 10, REVALIDATE),
        ("max-stale", "must-revalidate", 60, 100, REVALIDATE),
        ("max-stale", "proxy-revalidate", 60, 100, REVALIDATE),
        ("max-stale", "s-maxage=60", 60, 100, REVALIDATE),
        # RFC 5861 section 3.
        ("", "stale-while-revalidate=30", 60, 90, STALE_REVALIDATE),
        ("", "stale-while-revalidate=30", 60, 91, REVALIDATE),
        ("", "stale-while-revalidate=30, must-revalidate", 60, 70, REVALIDATE),
    ],
)
def test_decide(request_cc, response_cc, lifetime, age, decision):
    assert (
        policy.decide(
            policy.parse_cache_control([request_cc.encode()]),
            policy.parse_cache_control([response_cc.encode()]),
            lifetime,
            age,
        )
        == decision
    )


@pytest.mark.parametrize(
    "request_cc, response_cc, age, allowed",
    [
        ("", "stale-if-error=60", 100, True),
        ("", "stale-if-error=60", 121, False),
        ("stale-if-error=100", "", 150, True),
        ("", "", 100, False),
        ("", "stale-if-error=60, must-revalidate", 100, False),
        ("no-cache", "stale-if-error=60", 100, False),
    ],
)
def test_stale_if_error(request_cc, response_cc, age, allowed):
    assert (
        policy.stale_if_error_allows(
            policy.parse_cache_control([request_cc.encode()]),
            policy.parse_cache_control([response_cc.encode()]),
            60,
            age,
        )
        is allowed
    )


def test_vary_fields_and_values():
    response = fields("Vary: Accept-Encoding, accept-language\nVary: Accept-Encoding")
    assert policy.vary_fields(response) == (b"accept-encoding", b"accept-language")
    assert policy.vary_fields(fields("Vary: *")) is None
    names = (b"accept-encoding", b"accept-language")
    one = policy.vary_values(names, fields("Accept-Encoding: gzip,  br\nAccept-Language: en"))
    two = policy.vary_values(names, fields("accept-encoding: gzip\naccept-encoding: br\nAccept-Language: en"))
    assert one == two == (b"gzip,br", b"en")
    assert policy.vary_values(names, []) == (b"", b"")


def test_validators():
    stored = fields('ETag: "v1"\nLast-Modified: ' + DATE.decode())
    assert policy.validators(stored) == [
        (b"If-None-Match", b'"v1"'),
        (b"If-Modified-Since", DATE),
    ]


def test_updated_headers_keep_body_framing():
    """
    A 304 replaces the stored fields it carries (RFC 9111 section 3.2),
    but not those describing the stored body.
    """
    stored = fields('ETag: "v1"\nCache-Control: max-age=5\nContent-Encoding: gzip\nX-Kept: yes')
    fresh = fields('ETag: "v1"\nCache-Control: max-age=60\nContent-Encoding: identity')
    assert sorted(policy.updated_headers(stored, fresh)) == sorted(
        fields('Content-Encoding: gzip\nX-Kept: yes\nETag: "v1"\nCache-Control: max-age=60')
    )


@pytest.mark.parametrize(
    "method, status, response, targets",
    [
        (b"GET", 200, "", None),
        (b"POST", 200, "", []),
        (b"DELETE", 204, "", []),
        (b"POST", 303, "Location: /done\nContent-Location: /a", [b"/done", b"/a"]),
        (b"POST", 500, "", None),
        (b"PUT", 404, "", None),
    ],
)
def test_invalidated_targets(method, status, response, targets):
    assert policy.invalidated_targets(method, status, fields(response) if response else []) == targets


@pytest.mark.parametrize(
    "stored, conditions, answer",
    [
        ('ETag: "v1"', 'If-None-Match: "v1"', True),
        ('ETag: W/"v1"', 'If-None-Match: "v0", "v1"', True),
        ('ETag: "v1"', 'If-None-Match: "v2"', False),
        ('ETag: "v1"', "If-None-Match: *", True),
        # If-None-Match wins over If-Modified-Since.
        ('ETag: "v1"\nLast-Modified: ' + DATE.decode(), 'If-None-Match: "v2"\nIf-Modified-Since: ' + DATE.decode(), False),
        ("Last-Modified: " + DATE.decode(), "If-Modified-Since: " + DATE.decode(), True),
        ("Last-Modified: " + DATE.decode(), "If-Modified-Since: Sun, 06 Nov 1994 08:00:00 GMT", False),
        ("Content-Type: text/plain", "If-Modified-Since: " + DATE.decode(), False),
    ],
)
def test_not_modified(stored, conditions, answer):
    assert policy.not_modified(fields(stored), fields(conditions)) is answer


@pytest.mark.parametrize(
    "range_value, if_range, stored, chosen",
    [
        (None, None, "", None),
        (b"bytes=0-9", None, "", (0, 9)),
        (b"bytes=90-", None, "", (90, 99)),
        (b"bytes=-10", None, "", (90, 99)),
        (b"bytes=-1000", None, "", (0, 99)),
        (b"bytes=50-1000", None, "", (50, 99)),
        (b"bytes=100-", None, "", (100, 100)),
        (b"bytes=0-1,5-6", None, "", None),
        (b"items=0-1", None, "", None),
        (b"bytes=5-1", None, "", None),
        (b"bytes=0-9", b'"v1"', 'ETag: "v1"', (0, 9)),
        (b"bytes=0-9", b'"v2"', 'ETag: "v1"', None),
        (b"bytes=0-9", b'"v1"', 'ETag: W/"v1"', None),
        (b"bytes=0-9", DATE, "Last-Modified: " + DATE.decode(), (0, 9)),
    ],
)
def test_byte_range(range_value, if_range, stored, chosen):
    assert policy.byte_range(range_value, if_range, fields(stored) if stored else [], 100) == chosen
