"""
Malformed and smuggling requests, sent as raw bytes over a real socket:
each is answered with a 4xx (or the connection is closed), the connection
closes, and the backend receives nothing of it.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import ServerSettings

from ..support.loopback import (
    RecordingFactory,
    connect_raw,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)

OK = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"


def head(*lines: bytes, body: bytes = b"") -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


#: (name, raw request, acceptable statuses).  Statuses None: closing the
#: connection without an answer is acceptable too.
CORPUS = [
    # Framing: Content-Length and Transfer-Encoding (RFC 9112 section 6).
    (
        "cl and te",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Content-Length: 4",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "te and cl",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            b"Content-Length: 4",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "two different cl",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Content-Length: 1",
            b"Content-Length: 2",
            body=b"ab",
        ),
        {400},
    ),
    (
        "two equal cl",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Content-Length: 2",
            b"Content-Length: 2",
            body=b"ab",
        ),
        {400},
    ),
    (
        "cl list",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 2, 2", body=b"ab"),
        {400},
    ),
    ("cl letters", head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: abc"), {400}),
    ("cl negative", head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: -1"), {400}),
    (
        "cl plus",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: +2", body=b"ab"),
        {400},
    ),
    (
        "cl hex",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 0x2", body=b"ab"),
        {400},
    ),
    (
        "cl inner space",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 1 2"),
        {400},
    ),
    ("cl empty", head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length:"), {400}),
    (
        "te gzip",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: gzip",
            body=b"0\r\n\r\n",
        ),
        {400, 501},
    ),
    (
        "te identity",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: identity",
            body=b"0\r\n\r\n",
        ),
        {400, 501},
    ),
    (
        "te chunked not last",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked, gzip",
            body=b"0\r\n\r\n",
        ),
        {400, 501},
    ),
    (
        "te chunked twice",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked, chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "te two fields",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "te lookalike",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: xchunked",
            body=b"0\r\n\r\n",
        ),
        {400, 501},
    ),
    (
        "te vertical tab",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: \x0bchunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "te in http/1.0",
        head(
            b"POST / HTTP/1.0",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "te space before colon",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding : chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    (
        "cl over 63 bits",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 9223372036854775808"),
        {400},
    ),
    (
        "cl wrapping to 5 modulo 2**64",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Content-Length: 18446744073709551621",
            body=b"helloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        {400},
    ),
    (
        "cl long digit string",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: " + b"9" * 5000),
        {400},
    ),
    (
        "cl differing list",
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 2, 3", body=b"abc"),
        {400},
    ),
    # Names a backend maps from _ to - (RFC 9110 section 5.1, CGI).
    (
        "content_length",
        head(
            b"GET / HTTP/1.1",
            b"Host: a",
            b"Content_Length: 38",
            body=b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        {400},
    ),
    (
        "transfer_encoding",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Content-Length: 5",
            b"transfer_encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        {400},
    ),
    ("proxy_connection", head(b"GET / HTTP/1.1", b"Host: a", b"Proxy_Connection: x"), {400}),
    ("keep_alive", head(b"GET / HTTP/1.1", b"Host: a", b"KEEP_ALIVE: 5"), {400}),
    ("x_request_id", head(b"GET / HTTP/1.1", b"Host: a", b"X_Request_Id: 1"), {400}),
    (
        "x_forwarded_for",
        head(b"GET / HTTP/1.1", b"Host: a", b"X_Forwarded_For: 10.0.0.1"),
        {400},
    ),
    # A body where none is allowed (RFC 9110 section 9.3.8).
    (
        "trace with a body",
        head(b"TRACE / HTTP/1.1", b"Host: a", b"Content-Length: 5", body=b"hello"),
        {400},
    ),
    # Chunked bodies (RFC 9112 section 7.1).
    (
        "chunk size letters",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"zz\r\nab\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk size 0x",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"0x2\r\nab\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk size negative",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"-2\r\nab\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk size overflow",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"f" * 40 + b"\r\nab\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk size space",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b" 2\r\nab\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk without crlf",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"2\r\nabcd\r\n0\r\n\r\n",
        ),
        {400},
    ),
    (
        "chunk bare lf",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            body=b"2\nab\n0\n\n",
        ),
        {400},
    ),
    # The head (RFC 9112 sections 2 to 5).
    ("obs-fold", head(b"GET / HTTP/1.1", b"Host: a", b"X-A: b", b" folded"), {400}),
    (
        "obs-fold tab",
        head(b"GET / HTTP/1.1", b"Host: a", b"X-A: b", b"\tfolded"),
        {400},
    ),
    ("space before colon", head(b"GET / HTTP/1.1", b"Host : a"), {400}),
    ("tab before colon", head(b"GET / HTTP/1.1", b"Host\t: a"), {400}),
    ("bare cr in value", head(b"GET / HTTP/1.1", b"Host: a", b"X-A: b\rc"), {400}),
    ("bare lf line ends", b"GET / HTTP/1.1\nHost: a\n\n", {400}),
    ("bare cr line ends", b"GET / HTTP/1.1\rHost: a\r\r", {400}),
    ("nul in value", head(b"GET / HTTP/1.1", b"Host: a", b"X-A: b\x00c"), {400}),
    ("nul in target", head(b"GET /a\x00b HTTP/1.1", b"Host: a"), {400}),
    ("del in value", head(b"GET / HTTP/1.1", b"Host: a", b"X-A: b\x7fc"), {400}),
    ("bad name", head(b"GET / HTTP/1.1", b"Host: a", b"X(A): b"), {400}),
    ("empty name", head(b"GET / HTTP/1.1", b"Host: a", b": b"), {400}),
    ("no colon", head(b"GET / HTTP/1.1", b"Host: a", b"X-A b"), {400}),
    ("double space request line", head(b"GET  / HTTP/1.1", b"Host: a"), {400}),
    ("tab in request line", head(b"GET\t/ HTTP/1.1", b"Host: a"), {400}),
    # Raw bytes 0x80 to 0xFF in a target: no URI has them (RFC 3986), and
    # backends decode them differently (UTF-8, Latin-1, or the low seven
    # bits: 0xAE as ".").
    ("non-ascii target", head(b"GET /caf\xc3\xa9 HTTP/1.1", b"Host: a"), {400}),
    ("space in target", head(b"GET /a b HTTP/1.1", b"Host: a"), {400}),
    ("bad version", head(b"GET / HTTP/1.x", b"Host: a"), {400}),
    ("lower-case version", head(b"GET / http/1.1", b"Host: a"), {400}),
    ("http/2 text", head(b"GET / HTTP/2.0", b"Host: a"), {400, 505}),
    ("bad method", head(b"G(T / HTTP/1.1", b"Host: a"), {400}),
    ("no host", head(b"GET / HTTP/1.1"), {400}),
    ("two hosts", head(b"GET / HTTP/1.1", b"Host: a", b"Host: b"), {400}),
    ("host with space", head(b"GET / HTTP/1.1", b"Host: a b"), {400}),
    ("host with slash", head(b"GET / HTTP/1.1", b"Host: a/b"), {400}),
    ("userinfo target", head(b"GET http://u@a/ HTTP/1.1", b"Host: a"), {400}),
    ("relative target", head(b"GET a HTTP/1.1", b"Host: a"), {400}),
    # The authority of an absolute-form target becomes the Host: the same
    # rules as a Host field's.
    ("target authority two ports", head(b"GET http://a:1:2/ HTTP/1.1", b"Host: a"), {400}),
    ("target authority open bracket", head(b"GET http://[::1/ HTTP/1.1", b"Host: a"), {400}),
    ("target authority port letters", head(b"GET http://a:b/ HTTP/1.1", b"Host: a"), {400}),
    ("connect", head(b"CONNECT a:443 HTTP/1.1", b"Host: a:443"), {400, 405}),
    (
        "request line too long",
        head(b"GET /" + b"a" * 20000 + b" HTTP/1.1", b"Host: a"),
        {414},
    ),
    (
        "too many headers",
        head(b"GET / HTTP/1.1", b"Host: a", *[b"X-%d: v" % i for i in range(200)]),
        {431},
    ),
    (
        "header section too large",
        head(
            b"GET / HTTP/1.1",
            b"Host: a",
            *[b"X-%d: %s" % (i, b"v" * 4000) for i in range(20)],
        ),
        {431},
    ),
    (
        "one huge header",
        head(b"GET / HTTP/1.1", b"Host: a", b"X-A: " + b"v" * 70000),
        {431},
    ),
    (
        "smuggled in te body",
        head(
            b"POST / HTTP/1.1",
            b"Host: a",
            b"Transfer-Encoding: chunked",
            b"Content-Length: 30",
            body=b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        {400},
    ),
]


@inlineCallbacks
def refused(port: int, raw: bytes):
    """
    Send C{raw}; return what came back and whether the proxy closed the
    connection (the client gives up after 10 seconds).
    """
    client = yield connect_raw(port, raw)
    give_up = reactor.callLater(10, client.transport.abortConnection)
    received = yield client.closed
    closed_by_proxy = give_up.active()
    if closed_by_proxy:
        give_up.cancel()
    return received, closed_by_proxy


def status_of(response: bytes):
    if not response:
        return None
    return int(response.split(b" ", 2)[1])


class SmugglingCorpusTests(TestCase):
    """
    Every request of L{CORPUS} is refused before anything reaches the
    backend; a valid request on a new connection still goes through.
    """

    @inlineCallbacks
    def test_corpus(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        self.assertGreaterEqual(len(CORPUS), 30)
        for name, raw, statuses in CORPUS:
            response, closed = yield refused(port, raw)
            status = status_of(response)
            self.assertIn(status, statuses, "%s: %r" % (name, response[:200]))
            self.assertIn(b"\r\nConnection: close\r\n", response, name)
            self.assertTrue(closed, name)
            ok = yield raw_exchange(
                port, OK + b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            self.assertEqual(ok.count(b"HTTP/1.1 200 OK"), 2, name)
            seen = b"".join(backend.received)
            self.assertNotIn(b"smuggled", seen, name)
            for request in seen.split(b"\r\n\r\n"):
                if request:
                    self.assertTrue(
                        request.startswith(b"GET /ok HTTP/1.1"), (name, request)
                    )
            del backend.received[:]


class PipelinedRefusalTests(TestCase):
    """
    A malformed request pipelined behind a valid one is refused after the
    valid one is answered: responses go in the order of their requests
    (RFC 9112 section 9.3.2), or a client would take the refusal for the
    answer to its first request.
    """

    @inlineCallbacks
    def test_the_refusal_follows_the_answer_before_it(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        for bad in [
            head(b"GET / HTTP/1.1", b"Bad Name: x"),
            # What a backend that reads no X-Transfer-Encoding leaves after
            # the first request's empty body.
            b"0\r\n\r\n",
        ]:
            response, closed = yield refused(port, OK + bad)
            self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"), response)
            self.assertEqual(response.count(b"HTTP/1.1 400 Bad Request\r\n"), 1)
            self.assertGreater(
                response.index(b"HTTP/1.1 400 "), response.index(b"HTTP/1.1 200 ")
            )
            self.assertTrue(closed)


class SlowlorisTests(TestCase):
    """
    Clients that trickle their heads are cut off after C{header_timeout},
    however steadily they trickle, while a normal client is served.
    """

    @inlineCallbacks
    def test_slow_heads_are_closed_while_others_are_served(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        config = proxy_config([backend_port], server=ServerSettings(header_timeout=1.0))
        port = start_proxy(config, self)
        slow = []
        for _ in range(10):
            client = yield connect_raw(port, b"GET / HTTP/1.1\r\nHost: a\r\n")
            slow.append(client)
        trickle = LoopingCall(
            lambda: [c.transport.write(b"X-A: b\r\n") for c in slow if c.transport.connected]
        )
        trickle.start(0.2)
        self.addCleanup(lambda: trickle.running and trickle.stop())
        ok = yield raw_exchange(port, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertIn(b"HTTP/1.1 200 OK", ok)
        for client in slow:
            received = yield client.closed
            self.assertTrue(received.startswith(b"HTTP/1.1 408 "), received[:60])
        self.assertEqual(b"".join(backend.received).count(b"GET / HTTP/1.1"), 0)


class BodyWithoutSemanticsTests(TestCase):
    """
    A body on a GET is forwarded as its body and the connection closes
    after the answer, so that a request hidden behind it is never one of
    its own; C{body_without_semantics = "refuse"} answers 400 instead.
    """

    PIPELINED = (
        b"GET /first HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
    )

    @inlineCallbacks
    def test_forwarded_and_closed(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        response, closed = yield refused(port, self.PIPELINED)
        self.assertTrue(closed)
        self.assertEqual(response.count(b"HTTP/1.1 "), 1, response)
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"), response)
        self.assertIn(b"\r\nConnection: close\r\n", response)
        self.assertEqual(len(backend.requests), 1)
        head, body = backend.requests[0]
        self.assertTrue(head.startswith(b"GET /first HTTP/1.1\r\n"), head)
        self.assertEqual(body, b"hello")
        self.assertNotIn(b"/second", b"".join(backend.received))

    @inlineCallbacks
    def test_the_backend_connection_is_not_reused_either(self):
        """
        A backend that ignores a GET's body would read it as the start of
        the next request on a pooled connection: the proxy closes that
        connection too, so the next request, another client's, gets a new
        one.
        """
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        yield refused(port, self.PIPELINED)
        ok = yield raw_exchange(port, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertIn(b"HTTP/1.1 200 OK", ok)
        self.assertEqual(backend.connections, 2)
        self.assertEqual(len(backend.requests), 2)

    @inlineCallbacks
    def test_a_get_without_a_body_reuses_the_backend_connection(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        for _ in range(2):
            ok = yield raw_exchange(port, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            self.assertIn(b"HTTP/1.1 200 OK", ok)
        self.assertEqual(backend.connections, 1)

    @inlineCallbacks
    def test_refused(self):
        backend = RecordingFactory()
        backend_port = yield listen(backend, self)
        config = proxy_config(
            [backend_port], server=ServerSettings(body_without_semantics="refuse")
        )
        port = start_proxy(config, self)
        response, closed = yield refused(port, self.PIPELINED)
        self.assertTrue(closed)
        self.assertTrue(response.startswith(b"HTTP/1.1 400 "), response)
        self.assertEqual(response.count(b"HTTP/1.1 "), 1, response)
        self.assertEqual(backend.received, [])
        ok = yield raw_exchange(port, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertIn(b"HTTP/1.1 200 OK", ok)
