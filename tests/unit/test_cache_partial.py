"""
Partial responses (RFC 9111 sections 3.3 and 3.4): which 206 answers are
stored, and how pieces combine, without a reactor.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from twisted.internet.task import Clock

from txrevproxy.cache import partial, policy
from txrevproxy.cache.disk import DiskStore
from txrevproxy.cache.fetch import Fetch
from txrevproxy.cache.policy import Timing
from txrevproxy.cache.shared import SharedCache
from txrevproxy.cache.store import OVERHEAD, MemoryStore, StoredResponse
from txrevproxy.config.model import CacheSettings

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
SECOND_BEFORE = b"Sun, 06 Nov 1994 08:49:36 GMT"
BODY = b"0123456789"


@pytest.mark.parametrize(
    "value, parsed",
    [
        (b"bytes 0-9/10", (0, 9, 10)),
        (b"bytes 2-4/10", (2, 4, 10)),
        (b"bytes 2-4/*", None),
        (b"bytes */10", None),
        (b"bytes 4-2/10", None),
        (b"bytes 0-10/10", None),
        (b"items 0-9/10", None),
        (b"bytes 0-9/10, bytes 0-1/10", None),
    ],
)
def test_content_range(value, parsed):
    assert policy.content_range([(b"Content-Range", value)]) == parsed


def test_several_content_ranges_are_none():
    headers = [(b"Content-Range", b"bytes 0-1/10"), (b"Content-Range", b"bytes 0-1/10")]
    assert policy.content_range(headers) is None


@pytest.mark.parametrize(
    "headers, validator",
    [
        ([(b"ETag", b'"a"')], (b"etag", b'"a"')),
        ([(b"ETag", b'W/"a"')], None),
        # A weak ETag is not made strong by a Last-Modified next to it.
        ([(b"ETag", b'W/"a"'), (b"Last-Modified", SECOND_BEFORE), (b"Date", DATE)], None),
        ([(b"Last-Modified", SECOND_BEFORE), (b"Date", DATE)], (b"last-modified", SECOND_BEFORE)),
        # Modified within the second of its Date: it may change again
        # within that second (RFC 9110 section 8.8.2.2).
        ([(b"Last-Modified", DATE), (b"Date", DATE)], None),
        ([(b"Last-Modified", SECOND_BEFORE)], None),
        ([(b"Last-Modified", b"yesterday"), (b"Date", DATE)], None),
        ([], None),
    ],
)
def test_strong_validator(headers, validator):
    assert policy.strong_validator(headers) == validator


PIECE = [(b"Content-Range", b"bytes 0-4/10"), (b"ETag", b'"a"'), (b"Cache-Control", b"max-age=60")]


@pytest.mark.parametrize(
    "request_headers, headers, reason",
    [
        ([(b"Range", b"bytes=0-4")], PIECE, None),
        ([(b"Range", b"bytes=-5")], PIECE, None),
        # Heuristically cacheable with its validator (RFC 9110 section 15.3.7).
        ([(b"Range", b"bytes=0-4")], PIECE[:2], None),
        ([], PIECE, "range"),
        ([(b"Range", b"bytes=0-1,3-4")], PIECE, "range"),
        ([(b"Range", b"items=0-4")], PIECE, "range"),
        # A multipart/byteranges answer has no Content-Range of its own.
        ([(b"Range", b"bytes=0-4")], PIECE[1:], "content-range"),
        ([(b"Range", b"bytes=0-4")], [(b"Content-Range", b"bytes 0-4/*")] + PIECE[1:], "content-range"),
        ([(b"Range", b"bytes=0-4")], [PIECE[0], (b"ETag", b'W/"a"'), PIECE[2]], "no strong validator"),
        ([(b"Range", b"bytes=0-4")], [PIECE[0], PIECE[2]], "no strong validator"),
        ([(b"Range", b"bytes=0-4")], PIECE + [(b"Cache-Control", b"no-store")], "no-store"),
        ([(b"Range", b"bytes=0-4")], PIECE + [(b"Set-Cookie", b"id=1")], "set-cookie"),
    ],
)
def test_which_206_is_stored(request_headers, headers, reason):
    assert (
        policy.uncacheable_reason(
            b"GET", request_headers, 206, headers, store_set_cookie=False, heuristic=False
        )
        == reason
    )


def stored(status=206, first=0, data=BODY[:5], length=10, etag=b'"a"', at=0.0, **fields):
    """
    A response as the cache stores it: for a 206, the piece C{data} at
    C{first} of a representation of C{length} bytes.
    """
    headers = [(b"ETag", etag)] if etag else []
    headers += [(name.replace("_", "-").encode(), value) for name, value in fields.items()]
    response = StoredResponse(
        b"http://h/f", (), (), status, b"Partial Content" if status == 206 else b"OK",
        tuple(headers), data, Timing(at, at),
    )
    return partial.piece(response, first, length) if status == 206 else response


def ranges(response):
    return [(piece.first, piece.body) for piece in response.body.pieces]


def test_a_piece_alone_is_stored_as_it_is():
    new = stored()
    assert partial.combined(None, new, 1000) is new
    assert (len(new.body), new.body.length) == (5, 10)


def test_pieces_with_the_same_validator_combine():
    old = stored(data=b"012", X_Old=b"1")
    new = stored(first=6, data=b"678", at=5.0, X_Old=b"2")
    result = partial.combined(old, new, 1000)
    assert result.status == 206
    assert ranges(result) == [(0, b"012"), (6, b"678")]
    # The new piece's fields replace those of the old (RFC 9111 3.4).
    assert (b"X-Old", b"2") in result.headers and (b"X-Old", b"1") not in result.headers
    assert result.timing == Timing(5.0, 5.0)
    assert result.body.covers(0, 2) and result.body.covers(6, 8)
    assert not result.body.covers(2, 6)


def test_the_new_piece_wins_where_they_overlap():
    old = stored(data=b"01234")
    new = stored(first=3, data=b"ABC")
    result = partial.combined(old, new, 1000)
    assert ranges(result) == [(0, b"012"), (3, b"ABC")]
    reader = result.body.open()
    reader.seek(1)
    assert reader.read(100) == b"12"
    assert reader.read(100) == b"ABC"
    assert reader.read(100) == b""


def test_pieces_that_cover_everything_make_a_complete_200():
    old = stored(data=b"01234", X_Kept=b"old")
    result = partial.combined(old, stored(first=4, data=b"456789"), 1000)
    assert (result.status, result.reason, result.body) == (200, b"OK", BODY)
    assert (b"X-Kept", b"old") in result.headers
    assert policy.content_range(result.headers) is None


def test_different_validators_replace():
    new = stored(first=5, data=b"56789", etag=b'"b"')
    assert partial.combined(stored(), new, 1000) is new


def test_weak_validators_never_combine():
    new = stored(first=5, data=b"56789", etag=b'W/"a"')
    assert partial.combined(stored(etag=b'W/"a"'), new, 1000) is new


def test_another_complete_length_replaces():
    new = stored(first=5, data=b"56789", length=11)
    assert partial.combined(stored(), new, 1000) is new


def test_last_modified_validators_combine_when_strong():
    dated = dict(etag=None, Last_Modified=SECOND_BEFORE, Date=DATE)
    old = stored(**dated)
    result = partial.combined(old, stored(first=5, data=b"56789", **dated), 1000)
    assert result.status == 200
    same_second = dict(etag=None, Last_Modified=DATE, Date=DATE)
    new = stored(first=5, data=b"56789", **same_second)
    assert partial.combined(stored(**same_second), new, 1000) is new


def test_a_union_over_the_size_bound_keeps_the_new_piece_only():
    new = stored(first=5, data=b"56789")
    assert partial.combined(stored(), new, 9) is new
    assert partial.combined(stored(), new, 10).status == 200


def test_a_piece_of_a_stored_200_keeps_the_200_and_its_fields():
    old = stored(status=200, data=BODY, X_Version=b"200")
    result = partial.combined(old, stored(first=2, data=b"23"), 1000)
    assert (result.status, result.body, result.headers) == (200, BODY, old.headers)


def test_a_partial_answers_the_ranges_it_holds_only():
    held = stored(first=2, data=b"234")
    assert partial.answers(held, b"GET", [(b"Range", b"bytes=2-4")])
    assert partial.answers(held, b"GET", [(b"Range", b"bytes=3-3")])
    # Unsatisfiable whatever the representation holds: answered 416.
    assert partial.answers(held, b"GET", [(b"Range", b"bytes=10-")])
    assert not partial.answers(held, b"GET", [(b"Range", b"bytes=2-5")])
    assert not partial.answers(held, b"GET", [(b"Range", b"bytes=-3")])
    assert not partial.answers(held, b"GET", [])
    assert not partial.answers(held, b"HEAD", [(b"Range", b"bytes=2-4")])
    assert not partial.answers(held, b"GET", [(b"Range", b"bytes=2-3,4-4")])
    assert partial.answers(held, b"GET", [(b"Range", b"bytes=2-4"), (b"If-Range", b'"a"')])
    assert not partial.answers(held, b"GET", [(b"Range", b"bytes=2-4"), (b"If-Range", b'"b"')])
    assert partial.answers(stored(status=200, data=BODY), b"HEAD", [])


def test_a_partial_counts_the_bytes_it_holds():
    response = stored(first=2, data=b"234")
    assert response.size == OVERHEAD + len(b"http://h/f") + 3 + len(b'ETag"a"')


def test_disk_pieces_share_files_until_no_response_holds_them():
    directory = tempfile.mkdtemp()
    store = DiskStore(directory, 10000)

    def written(data):
        writer = store.writer()
        writer.write(data)
        return writer.close()

    first = stored(data=written(b"01234"))
    store.put(first)
    path = first.body.pieces[0].body.path
    second = partial.combined(first, stored(first=3, data=written(b"345")), 10000)
    store.put(second)
    # The first file is still the first piece of the combination.
    assert os.path.exists(path)
    assert ranges(second)[0][0] == 0 and ranges(second)[0][1].path == path
    reader = second.body.open()
    reader.seek(0)
    assert reader.read(10) == b"012"
    assert reader.read(10) == b"345"
    reader.close()
    whole = partial.combined(second, stored(first=6, data=written(b"6789")), 10000)
    assert (whole.status, len(whole.body)) == (200, 10)
    store.put(whole)
    reader = whole.body.open()
    reader.seek(0)
    assert b"".join(iter(lambda: reader.read(4), b"")) == BODY
    reader.close()
    store.remove(b"http://h/f")
    assert [name for name in os.listdir(directory)] == []
    os.rmdir(directory)


def fetched_piece(purge_first: bool) -> SharedCache:
    """
    A cache after a range fetch brought the piece 0-4 of ten bytes, with
    a purge of its URL while it was in flight or not.
    """
    cache = SharedCache(CacheSettings("pages"), MemoryStore(100000), Clock())
    fetch = Fetch(cache, None, b"http://h/f", [(b"Range", b"bytes=0-4")], None, None, b"fwd=uri-miss", False)
    # Nothing waits for a range request's answer.
    assert cache.fetches == {}
    if purge_first:
        cache.purge("http://h/f")
    fetch.responded(206, b"Partial Content", PIECE, 5)
    fetch.received(b"01234")
    fetch.ended()
    assert cache.range_fetches == {}
    return cache


def test_a_range_fetch_stores_its_piece():
    (stored,) = fetched_piece(False).store.variants(b"http://h/f")
    assert (stored.status, stored.body.length, ranges(stored)) == (206, 10, [(0, b"01234")])
    assert policy.content_range(stored.headers) is None


def test_a_purge_keeps_a_range_fetch_in_flight_from_storing():
    assert fetched_piece(True).store.keys() == {}
