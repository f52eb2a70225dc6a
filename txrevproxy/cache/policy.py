"""
The rules of a shared HTTP cache (RFC 9111, with RFC 5861's
C{stale-while-revalidate} and C{stale-if-error}), as pure functions.

Nothing here touches a transport, a clock or a store: the times come in
as seconds, the headers as lists of C{(name, value)} byte pairs, so every
rule is tested from a table of the RFC's cases.  L{txrevproxy.cache.shared}
applies them.
"""

from __future__ import annotations

import re
import time
from calendar import monthrange, timegm
from typing import Dict, Iterable, List, Optional, Tuple

import attr

Header = Tuple[bytes, bytes]
Directives = Dict[bytes, Optional[bytes]]

#: Statuses a cache may store and give a heuristic freshness lifetime
#: (RFC 9110 section 15.1, "heuristically cacheable").  A 206 is stored
#: only as a piece of its representation (L{partial_reason}).
HEURISTICALLY_CACHEABLE = frozenset(
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]
)

#: The statuses whose caching requirements this cache implements, which
#: a response with C{must-understand} must have to be stored (RFC 9111
#: section 5.2.2.3): those above, and the redirects 302, 303 and 307.
#: Any other final status (299, 400, 500, 599 ...) is stored only with an
#: explicit lifetime and without must-understand.
UNDERSTOOD = HEURISTICALLY_CACHEABLE | frozenset([302, 303, 307])

#: Final statuses never stored: 304 (it only refreshes a stored response).
NEVER_STORED = frozenset([304])

#: Methods that do not change the resource (RFC 9110 section 9.2.1); any
#: other method invalidates what is stored for its target (RFC 9111
#: section 4.4).
SAFE_METHODS = frozenset([b"GET", b"HEAD", b"OPTIONS", b"TRACE"])

#: Statuses that let a stale response be served under stale-if-error
#: (RFC 5861 section 4).
ERROR_STATUSES = frozenset([500, 502, 503, 504])


def header_values(headers: Iterable[Header], name: bytes) -> List[bytes]:
    """
    The values of every field named C{name} (lower-case).
    """
    return [value for field, value in headers if field.lower() == name]


def parse_cache_control(values: Iterable[bytes]) -> Directives:
    """
    The directives of Cache-Control field values (RFC 9111 section 5.2):
    lower-cased names to their argument (unquoted) or L{None}.  When a
    directive appears twice the first one counts; a malformed list item
    is skipped.
    """
    directives: Directives = {}
    for value in values:
        for item in _split_list(value):
            name, equals, argument = item.partition(b"=")
            name = name.strip().lower()
            if not name:
                continue
            if name not in directives:
                directives[name] = argument.strip().strip(b'"') if equals else None
    return directives


def _split_list(value: bytes) -> List[bytes]:
    """
    The items of a comma-separated list, keeping commas inside quotes
    (C{no-cache="a, b"}).
    """
    items = []
    start = 0
    quoted = False
    for position, byte in enumerate(value):
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            items.append(value[start:position])
            start = position + 1
    items.append(value[start:])
    return [item.strip() for item in items if item.strip()]


def delta_seconds(directives: Directives, name: bytes) -> Optional[int]:
    """
    The delta-seconds argument of a directive (RFC 9111 section 1.2.2), or
    L{None} when it is absent or not a non-negative integer.
    """
    argument = directives.get(name)
    if argument is None or not argument.isdigit():
        return None
    return int(argument)


_DAY = rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = rb"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_MONTHS = {
    name: number
    for number, name in enumerate(
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
         b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"],
        1,
    )
}

#: RFC 9110 section 5.6.7's IMF-fixdate (C{Sun, 06 Nov 1994 08:49:37 GMT}).
_IMF_FIXDATE = re.compile(_DAY + rb", ([0-9]{2}) " + _MONTH + rb" ([0-9]{4}) " + _TIME + rb" GMT")
#: The obsolete RFC 850 form (C{Sunday, 06-Nov-94 08:49:37 GMT}).
_RFC850 = re.compile(
    rb"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rb"([0-9]{2})-" + _MONTH + rb"-([0-9]{2}) " + _TIME + rb" GMT"
)
#: The obsolete asctime form (C{Sun Nov  6 08:49:37 1994}): a one-digit
#: day is padded with a space.
_ASCTIME = re.compile(_DAY + rb" " + _MONTH + rb" ([0-9]{2}| [0-9]) " + _TIME + rb" ([0-9]{4})")


def http_date(value: Optional[bytes]) -> Optional[float]:
    """
    An HTTP date as seconds since the epoch, or L{None} when it is not one
    exactly as RFC 9110 section 5.6.7 spells one of its three forms
    (IMF-fixdate, and the obsolete RFC 850 and asctime forms): names are
    case-sensitive, the zone is C{GMT}, the spaces single (but the one
    that pads an asctime day), the hour two digits, the day one of its
    month's.  Anything else is invalid, and RFC 9111 section 5.3 has an
    invalid date read as a time in the past: lenient parsing would turn
    junk into a freshness lifetime.
    """
    if value is None:
        return None
    match = _IMF_FIXDATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        year = int(year)
    else:
        match = _RFC850.fullmatch(value)
        if match is not None:
            day, month, year, hour, minute, second = match.groups()
            year = _rfc850_year(int(year))
        else:
            match = _ASCTIME.fullmatch(value)
            if match is None:
                return None
            month, day, hour, minute, second, year = match.groups()
            year = int(year)
    number = _MONTHS[month]
    day, hour, minute, second = int(day), int(hour), int(minute), int(second)
    if (
        year < 1
        or not 1 <= day <= monthrange(year, number)[1]
        or hour > 23
        or minute > 59
        or second > 60
    ):
        return None
    return float(timegm((year, number, day, hour, minute, second)))


def _rfc850_year(two_digits: int) -> int:
    """
    The year of an RFC 850 date's two digits: the one that is not more
    than 50 years in the future (RFC 9110 section 5.6.7).
    """
    this_year = time.gmtime().tm_year
    year = this_year - this_year % 100 + two_digits
    return year - 100 if year > this_year + 50 else year


def first_value(headers: Iterable[Header], name: bytes) -> Optional[bytes]:
    """
    The first value of the field C{name} (lower-case), or L{None}.
    """
    for field, value in headers:
        if field.lower() == name:
            return value
    return None


def response_cache_control(headers: Iterable[Header]) -> Directives:
    return parse_cache_control(header_values(headers, b"cache-control"))


def request_cache_control(headers: Iterable[Header]) -> Directives:
    """
    A request's Cache-Control directives; a request without Cache-Control
    but with C{Pragma: no-cache} means C{no-cache} (RFC 9111 section 5.4).
    """
    values = header_values(headers, b"cache-control")
    if values:
        return parse_cache_control(values)
    pragma = b",".join(header_values(headers, b"pragma")).lower()
    return {b"no-cache": None} if b"no-cache" in pragma else {}


def has_explicit_expiration(directives: Directives, headers: Iterable[Header]) -> bool:
    return (
        b"s-maxage" in directives
        or b"max-age" in directives
        or first_value(headers, b"expires") is not None
    )


def uncacheable_reason(
    method: bytes,
    request_headers: Iterable[Header],
    status: int,
    headers: List[Header],
    *,
    store_set_cookie: bool,
    heuristic: bool,
) -> Optional[str]:
    """
    Why a shared cache must not store a response (RFC 9111 section 3), or
    L{None} when it may.

    @param method: the request method; only GET responses are stored.
    @param store_set_cookie: store responses that carry Set-Cookie (the
        cache then never sends those fields to anyone else).
    @param heuristic: whether heuristic freshness is configured; a
        response without explicit expiration is only worth storing with
        one, or with a validator to revalidate it by.
    @return: a short reason, for Cache-Status and for tests.
    """
    if method != b"GET":
        return "method"
    if status < 200 or status in NEVER_STORED:
        return "status"
    if status == 206:
        reason = partial_reason(request_headers, headers)
        if reason is not None:
            return reason
    request_directives = request_cache_control(request_headers)
    if b"no-store" in request_directives:
        return "request no-store"
    directives = response_cache_control(headers)
    if b"must-understand" in directives:
        # Section 5.2.2.3: stored only when this cache implements the
        # status, and then no-store (there for the caches that do not)
        # is ignored.
        if status not in UNDERSTOOD:
            return "must-understand"
    elif b"no-store" in directives:
        return "no-store"
    if b"private" in directives:
        # A shared cache stores no private response at all (the qualified
        # form, private="field", is treated as unqualified).
        return "private"
    authorized = any(name.lower() == b"authorization" for name, _ in request_headers)
    if authorized and not (
        b"public" in directives
        or b"s-maxage" in directives
        or b"must-revalidate" in directives
    ):
        # RFC 9111 section 3.5.
        return "authorization"
    if not store_set_cookie and first_value(headers, b"set-cookie") is not None:
        return "set-cookie"
    vary = vary_fields(headers)
    if vary is None:
        return "vary *"
    explicit = has_explicit_expiration(directives, headers)
    if status not in UNDERSTOOD and not explicit:
        # Any other final status is stored only as long as its own
        # explicit lifetime says (section 3).
        return "status"
    if not explicit and b"public" not in directives:
        if status not in HEURISTICALLY_CACHEABLE:
            return "no expiration"
        if not heuristic and not _has_validator(headers) and b"no-cache" not in directives:
            return "no expiration"
    return None


def _has_validator(headers: Iterable[Header]) -> bool:
    return (
        first_value(headers, b"etag") is not None
        or first_value(headers, b"last-modified") is not None
    )


def vary_fields(headers: Iterable[Header]) -> Optional[Tuple[bytes, ...]]:
    """
    The lower-cased field names a response's Vary lists, sorted, or
    L{None} for C{Vary: *}, which no later request matches (RFC 9111
    section 4.1).
    """
    names = set()
    for value in header_values(headers, b"vary"):
        for name in value.split(b","):
            name = name.strip().lower()
            if name == b"*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def vary_values(
    fields: Tuple[bytes, ...], request_headers: Iterable[Header]
) -> Tuple[bytes, ...]:
    """
    A request's values of the fields a response varies on, normalised
    (combined with commas, whitespace around items removed), so two
    requests match when these are equal.
    """
    request_headers = list(request_headers)
    return tuple(
        b",".join(
            item.strip()
            for value in header_values(request_headers, name)
            for item in value.split(b",")
        )
        for name in fields
    )


def freshness_lifetime(
    status: int, headers: Iterable[Header], default_ttl: float
) -> float:
    """
    How long a response stays fresh in a shared cache (RFC 9111 section
    4.2.1): C{s-maxage}, else C{max-age}, else C{Expires} minus C{Date}
    (an invalid Expires means already expired), else the heuristic
    C{default_ttl} where section 4.2.2 allows one, else 0.  An invalid Age
    makes it 0 too.  C{immutable} (RFC 8246) extends nothing: it only
    tells clients not to revalidate while fresh.
    """
    headers = list(headers)
    if received_age(headers) is None:
        # An invalid Age (section 5.1): the age it had is unknown, so it
        # is taken as stale rather than fresh.
        return 0.0
    directives = response_cache_control(headers)
    for name in (b"s-maxage", b"max-age"):
        if name in directives:
            seconds = delta_seconds(directives, name)
            return 0.0 if seconds is None else float(seconds)
    expires = header_values(headers, b"expires")
    if expires:
        # Several Expires lines (or one that is a list) are no HTTP-date.
        expires_at = http_date(expires[0]) if len(expires) == 1 else None
        date = http_date(first_value(headers, b"date"))
        if expires_at is None or date is None:
            return 0.0
        return max(0.0, expires_at - date)
    if default_ttl and (status in HEURISTICALLY_CACHEABLE or b"public" in directives):
        return default_ttl
    return 0.0


@attr.s(frozen=True, auto_attribs=True)
class Timing:
    """
    When a stored response was requested and received, for its age.

    @ivar request_time: when the request that got it was sent.
    @ivar response_time: when its head was received.
    """

    request_time: float
    response_time: float


def received_age(headers: Iterable[Header]) -> Optional[int]:
    """
    The Age a response arrived with (RFC 9111 section 5.1), 0 without
    one, or L{None} when it is invalid: anything but one field line of
    delta-seconds (C{old, 0}, C{1, 2}, C{-1}, C{1.5}, empty).
    """
    values = header_values(headers, b"age")
    if not values:
        return 0
    if len(values) != 1 or not _DIGITS.fullmatch(values[0]):
        return None
    return int(values[0])


_DIGITS = re.compile(rb"[0-9]+")


def current_age(headers: Iterable[Header], timing: Timing, now: float) -> float:
    """
    The age of a stored response (RFC 9111 section 4.2.3): what it had
    when received (from Age and Date, corrected for the response delay)
    plus how long it has been stored.
    """
    headers = list(headers)
    age = received_age(headers) or 0
    date = http_date(first_value(headers, b"date"))
    apparent_age = 0.0 if date is None else max(0.0, timing.response_time - date)
    response_delay = timing.response_time - timing.request_time
    corrected_initial_age = max(apparent_age, age + response_delay)
    return corrected_initial_age + (now - timing.response_time)


#: What a cache does with a stored response for a request (L{decide}).
FRESH = "fresh"  # serve it
STALE = "stale"  # serve it stale (max-stale allows)
STALE_REVALIDATE = "stale-while-revalidate"  # serve it, revalidate behind
REVALIDATE = "revalidate"  # ask the origin first


def must_revalidate_when_stale(directives: Directives) -> bool:
    """
    Whether a stale response must never be served unvalidated, whatever
    the request allows (RFC 9111 sections 5.2.2.2, 5.2.2.8, 5.2.2.10:
    s-maxage implies proxy-revalidate in a shared cache).
    """
    return (
        b"must-revalidate" in directives
        or b"proxy-revalidate" in directives
        or b"s-maxage" in directives
    )


def stale_forbidden(directives: Directives) -> bool:
    """
    Whether a stored response must not stand in for the origin when it
    cannot be reached: the directives of L{must_revalidate_when_stale},
    and C{no-cache}, which allows no unvalidated use at all (section
    5.2.2.4).  The cache then answers 504 (section 5.2.2.2).
    """
    return must_revalidate_when_stale(directives) or b"no-cache" in directives


def decide(
    request_directives: Directives,
    response_directives: Directives,
    lifetime: float,
    age: float,
) -> str:
    """
    Whether a stored response may answer a request (RFC 9111 section 4.2,
    5.2.1, 5.2.2; RFC 5861 section 3).

    @return: L{FRESH}, L{STALE}, L{STALE_REVALIDATE} or L{REVALIDATE}.
    """
    if b"no-cache" in request_directives or b"no-cache" in response_directives:
        return REVALIDATE
    max_age = delta_seconds(request_directives, b"max-age")
    if max_age is not None and age > max_age:
        return REVALIDATE
    remaining = lifetime - age
    min_fresh = delta_seconds(request_directives, b"min-fresh")
    if min_fresh is not None and remaining < min_fresh:
        return REVALIDATE
    if remaining > 0:
        return FRESH
    if must_revalidate_when_stale(response_directives):
        return REVALIDATE
    staleness = -remaining
    if b"max-stale" in request_directives:
        allowed = delta_seconds(request_directives, b"max-stale")
        if allowed is None and request_directives[b"max-stale"] is None:
            return STALE
        if allowed is not None and staleness <= allowed:
            return STALE
    window = delta_seconds(response_directives, b"stale-while-revalidate")
    if window is not None and staleness <= window:
        return STALE_REVALIDATE
    return REVALIDATE


def stale_if_error_allows(
    request_directives: Directives,
    response_directives: Directives,
    lifetime: float,
    age: float,
) -> bool:
    """
    Whether a stale response may be served because the origin failed
    (RFC 5861 section 4: within the stale-if-error window of the response
    or of the request).  Never for a response that must be revalidated
    when stale, nor for a request that insisted on validation.
    """
    if stale_forbidden(response_directives) or b"no-cache" in request_directives:
        return False
    staleness = age - lifetime
    for directives in (request_directives, response_directives):
        window = delta_seconds(directives, b"stale-if-error")
        if window is not None and staleness <= window:
            return True
    return False


def validators(headers: Iterable[Header]) -> List[Header]:
    """
    The conditional request fields that revalidate a stored response
    (RFC 9111 section 4.3.1): If-None-Match with its ETag, and
    If-Modified-Since with its Last-Modified.
    """
    headers = list(headers)
    fields = []
    etag = first_value(headers, b"etag")
    if etag is not None:
        fields.append((b"If-None-Match", etag))
    modified = first_value(headers, b"last-modified")
    if http_date(modified) is not None:
        # An invalid date would be ignored (RFC 9110 section 13.1.3).
        fields.append((b"If-Modified-Since", modified))
    return fields


#: Fields a 304 must not change in a stored response (RFC 9111 section
#: 3.2: the framing of the stored body stays the stored body's).
_KEPT_ON_UPDATE = frozenset(
    [b"content-length", b"content-encoding", b"content-range", b"transfer-encoding"]
)


def updated_headers(stored: List[Header], fresh: List[Header]) -> List[Header]:
    """
    A stored response's fields updated from a 304 (RFC 9111 section 3.2):
    each field the 304 carries replaces the stored fields of that name,
    except the ones that describe the stored body.
    """
    replaced = {
        name.lower() for name, _ in fresh if name.lower() not in _KEPT_ON_UPDATE
    }
    kept = [(name, value) for name, value in stored if name.lower() not in replaced]
    return kept + [(name, value) for name, value in fresh if name.lower() in replaced]


def invalidated_targets(
    method: bytes, status: int, headers: Iterable[Header]
) -> Optional[List[bytes]]:
    """
    What an unsafe request invalidates (RFC 9111 section 4.4): after a
    non-error response, its own target (L{None} stands for it) and the
    URI references in Location and Content-Location.

    @return: L{None} when nothing is invalidated, else the Location and
        Content-Location values (possibly empty).
    """
    if method in SAFE_METHODS or not 200 <= status < 400:
        return None
    return [
        value
        for name, value in headers
        if name.lower() in (b"location", b"content-location")
    ]


def etag_matches(etag: Optional[bytes], if_none_match: List[bytes]) -> bool:
    """
    Whether If-None-Match values match an entity tag, by weak comparison
    (RFC 9110 section 13.1.2).
    """
    if etag is None:
        return any(value.strip() == b"*" for value in if_none_match)
    opaque = etag[2:] if etag.startswith(b"W/") else etag
    for value in if_none_match:
        for tag in value.split(b","):
            tag = tag.strip()
            if tag == b"*" or (tag[2:] if tag.startswith(b"W/") else tag) == opaque:
                return True
    return False


def not_modified(stored: List[Header], request_headers: List[Header]) -> bool:
    """
    Whether a client's conditional GET or HEAD is answered 304 from a
    stored response (RFC 9110 section 13.2.2): If-None-Match when
    present, else If-Modified-Since against Last-Modified.
    """
    if_none_match = header_values(request_headers, b"if-none-match")
    if if_none_match:
        return etag_matches(first_value(stored, b"etag"), if_none_match)
    since = http_date(first_value(request_headers, b"if-modified-since"))
    if since is None:
        # Most requests: the stored Last-Modified is not parsed for them.
        return False
    modified = http_date(first_value(stored, b"last-modified"))
    return modified is not None and modified <= since


#: The fields a 304 from the cache carries (RFC 9110 section 15.4.5).
NOT_MODIFIED_FIELDS = frozenset(
    [b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"]
)


def byte_range(
    range_value: Optional[bytes],
    if_range: Optional[bytes],
    stored: List[Header],
    length: int,
) -> Optional[Tuple[int, int]]:
    """
    The one byte range a request asks of a stored body of C{length} bytes
    (RFC 9110 section 14), as C{(first, last)} inclusive.

    @return: L{None} to send the whole body (no Range, an If-Range that
        does not match, several ranges, or a Range that is not bytes);
        C{(length, length)} when the range cannot be satisfied (416).
    """
    if range_value is None:
        return None
    if if_range is not None:
        etag = first_value(stored, b"etag")
        if if_range.startswith(b'"'):
            # A strong comparison: a weak ETag never matches.
            if etag is None or etag != if_range:
                return None
        elif http_date(if_range) is None or first_value(stored, b"last-modified") != if_range:
            return None
    unit, equals, spec = range_value.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        return None
    if not first:
        if not last.isdigit():
            return None
        suffix = int(last)
        if suffix == 0 or length == 0:
            return (length, length)
        return (max(0, length - suffix), length - 1)
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= length:
        return (length, length)
    end = int(last) if last else length - 1
    return (start, min(end, length - 1))


def content_range(headers: Iterable[Header]) -> Optional[Tuple[int, int, int]]:
    """
    The one range a 206 response carries (RFC 9110 section 14.4), from its
    single C{Content-Range: bytes first-last/complete}, as C{(first, last,
    complete)}; L{None} when there is no such field, several, an unknown
    complete length (C{/*}), or a range that is not within it.
    """
    values = header_values(headers, b"content-range")
    if len(values) != 1:
        return None
    match = _CONTENT_RANGE.fullmatch(values[0].strip())
    if match is None:
        return None
    first, last, complete = (int(number) for number in match.groups())
    if first > last or last >= complete:
        return None
    return first, last, complete


_CONTENT_RANGE = re.compile(rb"bytes ([0-9]+)-([0-9]+)/([0-9]+)")


def strong_validator(headers: Iterable[Header]) -> Optional[Header]:
    """
    The strong validator of a response (RFC 9110 section 8.8.1), which
    tells two pieces of one representation apart from pieces of two: its
    ETag when that is strong; else its Last-Modified when the response's
    Date is at least a second later (section 8.8.2.2: a change within that
    second would have kept the date); else L{None}, a weak ETag included
    (it allows different bytes).

    @return: C{(b"etag", tag)} or C{(b"last-modified", date)}.
    """
    headers = list(headers)
    etag = first_value(headers, b"etag")
    if etag is not None:
        etag = etag.strip()
        return (b"etag", etag) if etag.startswith(b'"') else None
    modified = first_value(headers, b"last-modified")
    modified_at = http_date(modified)
    date = http_date(first_value(headers, b"date"))
    if modified_at is None or date is None or date < modified_at + 1:
        return None
    return (b"last-modified", modified)


def partial_reason(request_headers: Iterable[Header], headers: Iterable[Header]) -> Optional[str]:
    """
    Why a 206 may not be stored as a piece of its representation (RFC 9111
    section 3.3), or L{None} when it may: it answers a request for one
    byte range, with one range whose complete length is known, and has a
    strong validator to combine it with other pieces by (section 3.4).  A
    multipart/byteranges answer is not stored.
    """
    ranges = header_values(request_headers, b"range")
    if len(ranges) != 1 or b"," in ranges[0] or not ranges[0].strip().lower().startswith(b"bytes="):
        return "range"
    headers = list(headers)
    if content_range(headers) is None:
        return "content-range"
    if strong_validator(headers) is None:
        return "no strong validator"
    return None
