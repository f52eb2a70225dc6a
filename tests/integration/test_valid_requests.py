"""
Valid but unusual requests (RFC 9110, RFC 9112), sent as raw bytes over a
real socket: each reaches the backend with its method, its target and its
field lines, however odd, and is answered.

What is compared is what the proxy must keep: the method, the target (in
origin form: an absolute-form target is sent as its path, with Host from
its authority), and the field lines, by name case-insensitively (RFC 9110
section 5.1; Twisted's parser canonicalizes the case), each name's values
in their order and the names in the order they first appear (lines of
different names may be regrouped, section 5.3).  The hop-by-hop fields and
those the proxy writes itself (Host, Content-Length, Expect, X-Forwarded-*,
Via, X-Request-ID) are left out of the comparison.
"""

from __future__ import annotations

import re
from typing import List, Tuple

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.http.headers import HOP_BY_HOP, SET_BY_PROXY

from ..support.loopback import (
    RecordingFactory,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: Not compared: hop-by-hop, or written by the proxy.
_NOT_COMPARED = HOP_BY_HOP | SET_BY_PROXY


def request(start: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return start + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(c + b"\r\n" for c in chunks) + b"0\r\n" + trailers + b"\r\n"


#: (name, raw request, expected target at the backend or None for the
#: client's, expected body).
TABLE = [
    ("plain get", request(b"GET / HTTP/1.1", b"Host: a"), None, b""),
    ("m-search", request(b"M-SEARCH /upnp HTTP/1.1", b"Host: a", b"MX: 2"), None, b""),
    ("propfind", request(b"PROPFIND /dav/ HTTP/1.1", b"Host: a", b"Depth: 1"), None, b""),
    ("every tchar method", request(b"X!#$%&'*+.^_`|~ / HTTP/1.1", b"Host: a"), None, b""),
    ("lower-case method", request(b"get / HTTP/1.1", b"Host: a"), None, b""),
    ("digits in method", request(b"M3 / HTTP/1.1", b"Host: a"), None, b""),
    ("every tchar name", request(b"GET / HTTP/1.1", b"Host: a", TCHAR + b": v"), None, b""),
    ("one-letter name", request(b"GET / HTTP/1.1", b"Host: a", b"X: 1"), None, b""),
    ("underscore name", request(b"GET / HTTP/1.1", b"Host: a", b"X_Custom: 1"), None, b""),
    ("empty value", request(b"GET / HTTP/1.1", b"Host: a", b"X-Empty:"), None, b""),
    ("empty value, space", request(b"GET / HTTP/1.1", b"Host: a", b"X-Empty: "), None, b""),
    ("no space after colon", request(b"GET / HTTP/1.1", b"Host:a", b"X-A:b"), None, b""),
    ("tab after colon", request(b"GET / HTTP/1.1", b"Host: a", b"X-A:\tb"), None, b""),
    ("trailing whitespace", request(b"GET / HTTP/1.1", b"Host: a", b"X-A: b \t"), None, b""),
    (
        "obs-text value",
        request(b"GET / HTTP/1.1", b"Host: a", b"X-A: " + bytes(range(0x80, 0x100))),
        None,
        b"",
    ),
    ("utf-8 value", request(b"GET / HTTP/1.1", b"Host: a", b"X-A: caf\xc3\xa9"), None, b""),
    (
        "inner spaces and tabs",
        request(b"GET / HTTP/1.1", b"Host: a", b"X-A: a  b\t\tc \t d"),
        None,
        b"",
    ),
    (
        "every visible character",
        request(b"GET / HTTP/1.1", b"Host: a", b"X-A: " + bytes(range(0x21, 0x7F))),
        None,
        b"",
    ),
    ("http/1.0 without host", request(b"GET /old HTTP/1.0"), None, b""),
    ("http/1.0 with host", request(b"GET /old HTTP/1.0", b"Host: a"), None, b""),
    (
        "absolute form",
        request(b"GET http://example.test/path?q=1 HTTP/1.1", b"Host: example.test"),
        b"/path?q=1",
        b"",
    ),
    (
        "absolute form, other host",
        request(b"GET http://example.test/p HTTP/1.1", b"Host: other.test"),
        b"/p",
        b"",
    ),
    (
        "absolute form, no path",
        request(b"GET http://example.test HTTP/1.1", b"Host: example.test"),
        b"/",
        b"",
    ),
    (
        "absolute form, https, port",
        request(b"GET HTTPS://example.test:8443/x HTTP/1.1", b"Host: example.test:8443"),
        b"/x",
        b"",
    ),
    (
        "absolute form, query without path",
        request(b"GET http://example.test?/p HTTP/1.1", b"Host: example.test"),
        b"/?/p",
        b"",
    ),
    ("asterisk options", request(b"OPTIONS * HTTP/1.1", b"Host: a"), None, b""),
    ("options path", request(b"OPTIONS /x HTTP/1.1", b"Host: a"), None, b""),
    (
        "chunked post, extensions and trailers",
        request(
            b"POST /up HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=chunked(b"5;ext=1\r\nhello", b"1;a;b=\"q\"\r\n!", trailers=b"X-T: 1\r\n"),
        ),
        None,
        b"hello!",
    ),
    (
        "chunked, upper-case hex",
        request(
            b"PUT /up HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: Chunked",
            body=chunked(b"A\r\n0123456789"),
        ),
        None,
        b"0123456789",
    ),
    (
        "content-length 0 post",
        request(b"POST /p HTTP/1.1", b"Host: a", b"Content-Length: 0"),
        None,
        b"",
    ),
    (
        "content-length 0 get",
        request(b"GET /p HTTP/1.1", b"Host: a", b"Content-Length: 0"),
        None,
        b"",
    ),
    (
        "content-length leading zeros",
        request(b"POST /p HTTP/1.1", b"Host: a", b"Content-Length: 0005", body=b"hello"),
        None,
        b"hello",
    ),
    (
        "patch with a body",
        request(b"PATCH /p HTTP/1.1", b"Host: a", b"Content-Length: 2", body=b"{}"),
        None,
        b"{}",
    ),
    ("query only", request(b"GET /? HTTP/1.1", b"Host: a"), None, b""),
    ("empty query value", request(b"GET /a?b=&c HTTP/1.1", b"Host: a"), None, b""),
    ("percent-encoded", request(b"GET /a%20b/%2F%25?x=%26 HTTP/1.1", b"Host: a"), None, b""),
    ("sub-delims in path", request(b"GET /a;b=c,d!$&'()*+=:@ HTTP/1.1", b"Host: a"), None, b""),
    ("double slash", request(b"GET //a//b HTTP/1.1", b"Host: a"), None, b""),
    ("dot segments", request(b"GET /a/./b/../c HTTP/1.1", b"Host: a"), None, b""),
    ("fragment-like", request(b"GET /a?b=#c HTTP/1.1", b"Host: a"), None, b""),
    (
        "long value",
        request(b"GET / HTTP/1.1", b"Host: a", b"X-Long: " + b"v" * 16000),
        None,
        b"",
    ),
    (
        "many headers",
        request(b"GET / HTTP/1.1", b"Host: a", *[b"X-H%d: %d" % (i, i) for i in range(90)]),
        None,
        b"",
    ),
    (
        "repeated accept",
        request(b"GET / HTTP/1.1", b"Host: a", b"Accept: text/html", b"Accept: */*;q=0.1"),
        None,
        b"",
    ),
    (
        "repeated fields apart",
        request(b"GET / HTTP/1.1", b"Host: a", b"X-A: 1", b"X-B: 2", b"x-a: 3"),
        None,
        b"",
    ),
    (
        "expect 100-continue",
        request(
            b"POST /p HTTP/1.1",
            b"Host: a",
            b"Expect: 100-continue",
            b"Content-Length: 3",
            body=b"abc",
        ),
        None,
        b"abc",
    ),
    (
        "host with port",
        request(b"GET / HTTP/1.1", b"Host: a.example:8080"),
        None,
        b"",
    ),
    ("host ipv6", request(b"GET / HTTP/1.1", b"Host: [::1]:80"), None, b""),
    ("empty host", request(b"GET / HTTP/1.1", b"Host:"), None, b""),
    (
        "connection options",
        request(b"GET / HTTP/1.1", b"Host: a", b"Connection: keep-alive, X-Hop", b"X-Hop: 1"),
        None,
        b"",
    ),
    (
        "quoted comma value",
        request(b"GET / HTTP/1.1", b"Host: a", b'X-Q: "a, b", c'),
        None,
        b"",
    ),
    ("delete without body", request(b"DELETE /d HTTP/1.1", b"Host: a"), None, b""),
    (
        "get with a body",
        request(b"GET /g HTTP/1.1", b"Host: a", b"Content-Length: 4", body=b"body"),
        None,
        b"body",
    ),
    ("leading empty line", b"\r\n" + request(b"GET / HTTP/1.1", b"Host: a"), None, b""),
]


def _parse(raw: bytes) -> Tuple[bytes, bytes, List[Tuple[bytes, List[bytes]]], bytes]:
    """
    The method, target, compared fields (see the module docstring) and
    Host of a request head.
    """
    lines = raw.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    method, target, _ = lines[0].split(b" ")
    fields: dict = {}
    host = b""
    hop = set()
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.lower()
        value = value.strip(b" \t")
        if lname == b"connection":
            hop.update(t.strip().lower() for t in value.split(b","))
        if lname == b"host":
            host = value
        if lname not in _NOT_COMPARED:
            fields.setdefault(lname, []).append(value)
    compared = [(name, values) for name, values in fields.items() if name not in hop]
    return method, target, compared, host


class ValidRequestTests(TestCase):
    """
    Every request of L{TABLE} reaches the backend as the client sent it.
    """

    @inlineCallbacks
    def test_table(self):
        self.assertGreaterEqual(len(TABLE), 40)
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        failures = []
        for name, raw, target, body in TABLE:
            del backend.requests[:]
            # Every request closes its connection, so that one left open
            # (a body on a GET) does not wait for a timeout.
            start = raw.index(b"\r\n", len(raw) - len(raw.lstrip(b"\r\n")))
            sent = raw[:start] + b"\r\nConnection: close" + raw[start:]
            response = yield raw_exchange(port, sent)
            method, client_target, fields, host = _parse(raw)
            if target is not None:
                host = re.split(rb"[/?]", client_target.split(b"//", 1)[1])[0]
            expected = (method, target or client_target, fields, host, body)
            if b" 200 OK\r\n" not in response or len(backend.requests) != 1:
                failures.append((name, response[:300]))
                continue
            received, received_body = backend.requests[0]
            got = _parse(received) + (received_body,)
            if not host:
                # An HTTP/1.0 request without Host: the backend gets its own.
                got = got[:3] + (b"",) + got[4:]
            if got != expected:
                failures.append((name, got, expected))
        self.assertEqual(failures, [])
