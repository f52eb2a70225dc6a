"""
Tests for L{txrevproxy.http.response_parser}: framing by RFC 9112 section
6.3, chunked decoding, incremental feeding and refusals.
"""

from __future__ import annotations

import pytest

from txrevproxy.http.response_parser import (
    ResponseParseError,
    ResponseParser,
    parse_head,
)


class Sink:
    """
    Records what the parser reports.
    """

    def __init__(self):
        self.heads = []
        self.body = b""
        self.ends = []

    def responseHead(self, status, reason, headers, length):
        self.heads.append((status, reason, headers, length))

    def responseBody(self, data):
        self.body += data

    def responseEnd(self, reusable):
        self.ends.append(reusable)


def parse(data: bytes, head_request=False, split=None):
    sink = Sink()
    parser = ResponseParser(sink)
    parser.expect(head_request)
    if split is None:
        parser.feed(data)
    else:
        for i in range(0, len(data), split):
            parser.feed(data[i : i + split])
    return sink, parser


@pytest.mark.parametrize("split", [None, 1, 3, 7])
def test_content_length_body_any_split(split):
    sink, parser = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", split=split
    )
    assert sink.heads == [(200, b"OK", [(b"Content-Length", b"5"), (b"X-A", b"b")], 5)]
    assert sink.body == b"hello"
    assert sink.ends == [True]
    assert parser.idle


@pytest.mark.parametrize("split", [None, 1, 2, 5])
def test_chunked_body_with_extensions_and_trailers(split):
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    sink, parser = parse(data, split=split)
    assert sink.heads[0][3] is None
    assert sink.body == b"hello world"
    assert sink.ends == [True]


def test_two_responses_in_sequence_on_one_parser():
    sink = Sink()
    parser = ResponseParser(sink)
    parser.expect(False)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    parser.expect(False)
    parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb")
    assert [h[0] for h in sink.heads] == [200, 404]
    assert sink.body == b"ab"
    assert sink.ends == [True, True]


def test_close_delimited_body_ends_at_eof_and_is_not_reusable():
    sink, parser = parse(b"HTTP/1.1 200 OK\r\n\r\nsome bytes")
    assert sink.ends == []
    assert parser.feed_eof() is True
    assert sink.body == b"some bytes"
    assert sink.ends == [False]


def test_eof_in_the_middle_of_a_length_body_is_not_completion():
    sink, parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert parser.feed_eof() is False
    assert sink.ends == []


@pytest.mark.parametrize(
    "status, head_request", [(204, False), (304, False), (200, True)]
)
def test_responses_without_body(status, head_request):
    sink, parser = parse(
        b"HTTP/1.1 %d X\r\nContent-Length: 42\r\n\r\n" % status, head_request
    )
    assert sink.heads[0][3] == 0
    assert sink.ends == [True]
    assert parser.idle


def test_interim_responses_are_skipped():
    sink, _ = parse(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert [h[0] for h in sink.heads] == [201]
    assert sink.ends == [True]


def test_connection_close_and_http10_are_not_reusable():
    sink, _ = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert sink.ends == [False]
    sink, _ = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert sink.ends == [False]


def test_close_among_other_connection_options_is_not_reusable():
    sink, _ = parse(
        b"HTTP/1.1 200 OK\r\nConnection: x-trace, Close\r\nContent-Length: 0\r\n\r\n"
    )
    assert sink.ends == [False]


def test_an_option_that_only_contains_close_keeps_the_connection():
    sink, _ = parse(
        b"HTTP/1.1 200 OK\r\nConnection: x-closed\r\nContent-Length: 0\r\n\r\n"
    )
    assert sink.ends == [True]


def test_transfer_encoding_overrides_content_length_and_forbids_reuse():
    sink, _ = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    assert sink.body == b"abc"
    assert sink.ends == [False]


def test_non_chunked_transfer_coding_reads_until_close():
    sink, parser = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz")
    assert parser.feed_eof()
    assert sink.body == b"zzz"


def test_identical_repeated_content_length_is_accepted():
    sink, _ = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
    assert sink.body == b"ok"


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_malformed_responses_are_refused(data):
    with pytest.raises(ResponseParseError):
        parse(data)


def test_bytes_after_a_complete_response_are_refused():
    with pytest.raises(ResponseParseError):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA")


def test_oversized_head_is_refused():
    with pytest.raises(ResponseParseError):
        parse(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000)


def test_obsolete_line_folding_is_replaced_by_a_space():
    _, _, _, headers = parse_head(b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\n")
    assert headers == [(b"X-Long", b"a b")]


@pytest.mark.parametrize(
    "fields, expected",
    [
        (b"", []),
        (b"\r\nA: 1", [(b"A", b"1")]),
        (b"\r\nA:1\r\nB:  two words \t\r\nC:\r\nD: x:y", [
            (b"A", b"1"), (b"B", b"two words"), (b"C", b""), (b"D", b"x:y")
        ]),
        (b"\r\nA: 1\r\nA: 2\r\nX-\xff: \x01caf\xc3\xa9", None),
        (b"\r\nA: 1\r\nA: 2\r\nB: caf\xc3\xa9\x01", [
            (b"A", b"1"), (b"A", b"2"), (b"B", b"caf\xc3\xa9\x01")
        ]),
    ],
)
def test_plain_and_line_by_line_field_parsing_agree(fields, expected):
    """
    Well-formed CRLF field lines take the one-pass path; the same lines
    ended by bare LF take the line-by-line one: the headers are the same,
    and so is a refusal.
    """
    crlf = b"HTTP/1.1 200 OK" + fields
    lf = crlf.replace(b"\r\n", b"\n")
    if expected is None:
        for head in (crlf, lf):
            with pytest.raises(ResponseParseError):
                parse_head(head)
    else:
        assert parse_head(crlf)[3] == parse_head(lf)[3] == expected


def test_bare_lf_line_endings_are_accepted():
    sink, _ = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    assert sink.heads[0][0] == 200
    assert sink.body == b"ok"


def test_started_tells_whether_response_bytes_arrived():
    sink = Sink()
    parser = ResponseParser(sink)
    parser.expect(False)
    assert not parser.started
    parser.feed(b"HTTP/1.1 2")
    assert parser.started
