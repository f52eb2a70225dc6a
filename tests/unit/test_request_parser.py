"""
Tests for L{txrevproxy.http.request_parser}: request heads read whole or in
pieces, and the status each malformed or oversized head is answered with.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.http.request_parser import HeadLimits, RequestHead, RequestHeadReader

LIMITS = HeadLimits(max_request_line=100, max_header_size=200, max_headers=4)


def read(data: bytes, limits: HeadLimits = LIMITS):
    reader = RequestHeadReader(limits)
    reader.feed(data)
    return reader.read()


def read_in_pieces(pieces, limits: HeadLimits = LIMITS):
    """
    Feed C{pieces} one by one, reading after each: the first head or
    status read, or L{None}.
    """
    reader = RequestHeadReader(limits)
    for piece in pieces:
        reader.feed(piece)
        result = reader.read()
        if result is not None:
            return result
    return None


GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example\r\nAccept:  */* \t\r\n\r\n"


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            GET,
            RequestHead(
                b"GET",
                b"/a?b=1",
                b"HTTP/1.1",
                [(b"Host", b"example"), (b"Accept", b"*/*")],
                0,
            ),
        ),
        (
            b"GET / HTTP/1.0\r\n\r\n",
            RequestHead(b"GET", b"/", b"HTTP/1.0", [], 0),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0012\r\n\r\nbody",
            RequestHead(
                b"POST", b"/", b"HTTP/1.1", [(b"Host", b"a"), (b"content-length", b"0012")], 12
            ),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
            RequestHead(
                b"POST", b"/", b"HTTP/1.1", [(b"Transfer-Encoding", b"Chunked")], None
            ),
        ),
        (
            # One empty line before a request is skipped.
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            RequestHead(b"GET", b"/", b"HTTP/1.1", [(b"Host", b"a")], 0),
        ),
        (
            # A field with an empty value, and the same name twice.
            b"GET / HTTP/1.1\r\nX-A:\r\nx-a: 2\r\n\r\n",
            RequestHead(b"GET", b"/", b"HTTP/1.1", [(b"X-A", b""), (b"x-a", b"2")], 0),
        ),
    ],
)
def test_whole_heads_are_read(data, expected):
    assert read(data) == expected


@pytest.mark.parametrize(
    "data, status",
    [
        # The request line.
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1 \r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\n\r\n", 400),
        (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400),
        (b"GET /" + b"a" * 87 + b" HTTP/1.1\r\n\r\n", 414),
        # A target of other than visible ASCII characters (Twisted's parser
        # refused it too).
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        # Field lines (the checks Twisted's parser made, then the proxy's).
        (b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\nb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent_Length: 1\r\n\r\n", 400),
        # The limits: four field lines, 200 bytes.
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nA: " + b"b" * 180 + b"\r\n\r\n", 431),
        # The first error in a head is the one answered.
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n" + b"A: b\r\n" * 5 + b"\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5 + b"Bad Name: x\r\n\r\n", 431),
    ],
)
def test_malformed_heads_are_answered(data, status):
    assert read(data) == status
    assert read_in_pieces([bytes([b]) for b in data]) == status


@pytest.mark.parametrize(
    "partial, status",
    [
        # A line ended by a bare LF or CR is refused before the head ends.
        (b"GET / HTTP/1.1\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\nX", 400),
        (b"GET / HTTP/1.1\r\nHost: a\rX", 400),
        # A bad line is answered as soon as it is in.
        (b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: a", 400),
        # A line that has run past every limit (max(100, 200) + CRLF).
        (b"GET /" + b"a" * 197, 414),
        (b"GET / HTTP/1.1\r\nA: " + b"b" * 199, 431),
    ],
)
def test_a_partial_head_is_answered_as_soon_as_it_is_wrong(partial, status):
    assert read(partial) == status


@pytest.mark.parametrize(
    "partial",
    [
        b"GET / HT",
        b"GET / HTTP/1.1\r",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r",
        b"\r\n",
        b"\r",
        b"GET /" + b"a" * 196,
    ],
)
def test_a_partial_head_waits(partial):
    assert read(partial) is None


def test_underscored_fields_are_kept_or_dropped():
    data = b"GET / HTTP/1.1\r\nX_A: 1\r\nHost: a\r\n\r\n"
    assert read(data).fields == [(b"X_A", b"1"), (b"Host", b"a")]
    dropping = HeadLimits(100, 200, 1, drop_underscored=True)
    # Dropped, it does not count against max_headers either.
    assert read(data, dropping).fields == [(b"Host", b"a")]
    assert read(data, HeadLimits(100, 200, 1)) == 431


def test_heads_are_read_one_at_a_time_and_what_follows_stays():
    reader = RequestHeadReader(LIMITS)
    reader.feed(b"POST /1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\n\r\n")
    first = reader.read()
    assert (first.target, first.length) == (b"/1", 3)
    assert reader.buffered() == 3 + 19
    assert reader.take()[:3] == b"abc"
    assert reader.buffered() == 0
    assert reader.read() is None
    reader.feed(b"GET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")
    assert reader.read().target == b"/2"
    assert reader.read().target == b"/3"
    assert reader.read() is None


def test_a_head_read_in_pieces_is_checked_once_its_lines_end():
    reader = RequestHeadReader(HeadLimits(100, 200, 1))
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert reader.read() is None
    # The second field line is one too many, answered before the head ends.
    reader.feed(b"Accept: */*\r\n")
    assert reader.read() == 431


@given(st.lists(st.integers(min_value=0, max_value=len(GET)), max_size=8))
def test_a_head_split_anywhere_reads_as_whole(cuts):
    cuts = sorted(cuts)
    pieces = [GET[a:b] for a, b in zip([0] + cuts, cuts + [len(GET)])]
    assert read_in_pieces(pieces) == read(GET)
