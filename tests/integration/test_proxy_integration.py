"""
Integration tests of the proxy core over real loopback sockets: forwarding
rules, pooling, streaming, and the answers to every kind of failure.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txrevproxy.config.model import ServerSettings

from ..support.loopback import (
    CountingSite,
    Echo,
    SilentFactory,
    connect_raw,
    echoed_headers,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)
from ..support.processes import free_port
from ..support.responses import split_response


class HeaderSetter(resource.Resource):
    """
    A backend answering with hop-by-hop headers that must not reach the
    client.
    """

    isLeaf = True

    def render(self, request):
        request.setHeader(b"connection", b"X-Internal")
        request.setHeader(b"x-internal", b"secret")
        request.setHeader(b"keep-alive", b"timeout=5")
        request.setHeader(b"x-kept", b"yes")
        return b"fine"


class ForwardingTests(TestCase):
    timeout = 15
    """
    What the backend receives and what the client gets back.
    """

    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        backend_port = yield listen(self.backend, self)
        self.port = start_proxy(proxy_config([backend_port]), self)
        self.backend_port = backend_port

    @inlineCallbacks
    def test_get_is_forwarded_with_forwarding_headers(self):
        raw = yield raw_exchange(
            self.port,
            b"GET /a/b?q=1 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: t\r\n"
            b"Connection: close\r\n\r\n",
        )
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(body.split(b"\n")[0], b"GET /a/b?q=1 0")
        seen = echoed_headers(body)
        self.assertEqual(seen[b"host"], [b"shop.test"])
        self.assertEqual(seen[b"x-forwarded-for"], [b"127.0.0.1"])
        self.assertEqual(seen[b"x-forwarded-proto"], [b"http"])
        self.assertEqual(seen[b"x-forwarded-host"], [b"shop.test"])
        self.assertEqual(seen[b"via"], [b"1.1 txrevproxy"])
        self.assertEqual(seen[b"user-agent"], [b"t"])
        self.assertEqual(seen[b"x-request-id"], headers[b"x-request-id"])

    @inlineCallbacks
    def test_path_and_query_are_forwarded_byte_for_byte(self):
        target = b"/a%2Fb/./c/../%7Ed;p?x=%20&y=%2f&&z"
        raw = yield raw_exchange(
            self.port,
            b"GET " + target + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        _, _, body = split_response(raw)
        self.assertEqual(body.split(b"\n")[0], b"GET " + target + b" 0")

    @inlineCallbacks
    def test_hop_by_hop_request_headers_are_dropped(self):
        raw = yield raw_exchange(
            self.port,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Drop\r\n"
            b"X-Drop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"
            b"Proxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\n"
            b"Proxy-Connection: keep-alive\r\nX-Keep: 1\r\n\r\n",
        )
        seen = echoed_headers(split_response(raw)[2])
        for name in (
            b"x-drop",
            b"keep-alive",
            b"te",
            b"proxy-authorization",
            b"upgrade",
            b"proxy-connection",
        ):
            self.assertNotIn(name, seen)
        self.assertEqual(seen[b"x-keep"], [b"1"])
        # The backend connection is the proxy's own business.
        self.assertNotEqual(seen.get(b"connection"), [b"close, X-Drop"])

    @inlineCallbacks
    def test_untrusted_forwarded_for_is_replaced(self):
        raw = yield raw_exchange(
            self.port,
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        )
        seen = echoed_headers(split_response(raw)[2])
        self.assertEqual(seen[b"x-forwarded-for"], [b"127.0.0.1"])
        self.assertEqual(seen[b"x-forwarded-proto"], [b"http"])

    @inlineCallbacks
    def test_upload_with_content_length_and_chunked(self):
        raw = yield raw_exchange(
            self.port,
            b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        )
        first, _, second = raw.partition(b"HTTP/1.1 200 OK\r\n")[2].partition(
            b"HTTP/1.1 200 OK\r\n"
        )
        self.assertIn(b"POST /u 5\n", first)
        self.assertIn(b"content-length: 5\n", first)
        self.assertIn(b"PUT /c 7\n", second)

    @inlineCallbacks
    def test_expect_100_continue(self):
        client = yield connect_raw(
            self.port,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        while b"\r\n\r\n" not in client.received:
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(client.received, b"HTTP/1.1 100 Continue\r\n\r\n")
        client.transport.write(b"abc")
        raw = yield client.closed
        status, _, body = split_response(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertIn(b"POST / 3\n", body)
        self.assertNotIn(b"expect", echoed_headers(body))

    @inlineCallbacks
    def test_http10_client(self):
        raw = yield raw_exchange(self.port, b"GET /old HTTP/1.0\r\n\r\n")
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.0 200 OK")
        self.assertTrue(body.startswith(b"GET /old 0"))
        self.assertIn(b"1.0 txrevproxy", echoed_headers(body)[b"via"][0])

    @inlineCallbacks
    def test_head_has_no_body(self):
        raw = yield raw_exchange(
            self.port, b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(body, b"")

    @inlineCallbacks
    def test_bad_requests_never_reach_the_backend(self):
        for request in [
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]:
            raw = yield raw_exchange(self.port, request)
            self.assertRegex(raw, rb"^HTTP/1.1 4\d\d ", request)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_absolute_form_target_is_sent_in_origin_form(self):
        raw = yield raw_exchange(
            self.port,
            b"GET http://shop.test:8080/p?q HTTP/1.1\r\nHost: other\r\n"
            b"Connection: close\r\n\r\n",
        )
        body = split_response(raw)[2]
        self.assertTrue(body.startswith(b"GET /p?q 0"))
        self.assertEqual(echoed_headers(body)[b"host"], [b"shop.test:8080"])

    @inlineCallbacks
    def test_backend_connections_are_pooled(self):
        for _ in range(5):
            yield raw_exchange(
                self.port,
                b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 3
                + b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            )
        self.assertEqual(self.backend.connections, 1)


class ResponseHeaderTests(TestCase):
    @inlineCallbacks
    def test_hop_by_hop_response_headers_are_dropped(self):
        backend_port = yield listen(CountingSite(HeaderSetter()), self)
        port = start_proxy(proxy_config([backend_port]), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        _, headers, body = split_response(raw)
        self.assertEqual(body, b"fine")
        self.assertNotIn(b"x-internal", headers)
        self.assertNotIn(b"keep-alive", headers)
        self.assertEqual(headers[b"x-kept"], [b"yes"])


class PreserveHostTests(TestCase):
    @inlineCallbacks
    def test_backend_authority_is_sent_when_host_is_not_preserved(self):
        backend_port = yield listen(CountingSite(Echo()), self)
        port = start_proxy(proxy_config([backend_port], preserve_host=False), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
        )
        seen = echoed_headers(split_response(raw)[2])
        self.assertEqual(seen[b"host"], [b"127.0.0.1:%d" % backend_port])
        self.assertEqual(seen[b"x-forwarded-host"], [b"shop.test"])


class FailureTests(TestCase):
    timeout = 15
    """
    502, 504, 413 and the aborts.
    """

    @inlineCallbacks
    def test_refused_backend_is_502_without_internal_address(self):
        port = start_proxy(proxy_config([free_port()]), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 502 Bad Gateway")
        self.assertIn(headers[b"x-request-id"][0], body)
        self.assertNotIn(b"127.0.0.1", body)
        self.assertNotIn(b"Traceback", body)

    @inlineCallbacks
    def test_silent_backend_is_504_after_response_timeout(self):
        factory = SilentFactory()
        backend_port = yield listen(factory, self)
        port = start_proxy(proxy_config([backend_port], response_timeout=0.3), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 504 Gateway Timeout")
        self.assertIn(b"request id: " + headers[b"x-request-id"][0], body)
        # The timed-out backend connection is dropped, not pooled.
        while not factory.lost:
            yield deferLater(reactor, 0.01, lambda: None)

    @inlineCallbacks
    def test_body_over_limit_is_413(self):
        backend = CountingSite(Echo())
        backend_port = yield listen(backend, self)
        port = start_proxy(
            proxy_config([backend_port], server=ServerSettings(max_request_body=10)),
            self,
        )
        raw = yield raw_exchange(
            port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
        )
        status, headers, _ = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 413 Content Too Large")
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertEqual(backend.connections, 0)
        raw = yield raw_exchange(
            port,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 413 "))

    @inlineCallbacks
    def test_client_abort_cancels_the_backend_exchange(self):
        factory = SilentFactory()
        backend_port = yield listen(factory, self)
        port = start_proxy(proxy_config([backend_port]), self)
        client = yield connect_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        while not factory.connected:
            yield deferLater(reactor, 0.01, lambda: None)
        client.transport.abortConnection()
        while not factory.lost:
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(factory.lost, factory.connected)
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_backend_dying_mid_response_aborts_the_client(self):
        class HalfAnswer(Protocol):
            def dataReceived(self, data):
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
                )
                self.transport.loseConnection()

        backend_port = yield listen(Factory.forProtocol(HalfAnswer), self)
        port = start_proxy(proxy_config([backend_port]), self)
        raw = yield raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(headers[b"content-length"], [b"100"])
        self.assertLess(len(body), 100)

    @inlineCallbacks
    def test_backend_dying_mid_chunked_response_leaves_chunked_body_unterminated(self):
        class HalfChunked(Protocol):
            def dataReceived(self, data):
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                )
                self.transport.loseConnection()

        backend_port = yield listen(Factory.forProtocol(HalfChunked), self)
        port = start_proxy(proxy_config([backend_port]), self)
        raw = yield raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 OK"))
        self.assertFalse(raw.endswith(b"0\r\n\r\n"))

    @inlineCallbacks
    def test_stale_pooled_connection_is_retried_for_bodyless_requests(self):
        class AnswerOnceThenClose(Protocol):
            answered = 0

            def dataReceived(self, data):
                if self.answered:
                    self.transport.abortConnection()
                    return
                self.answered += 1
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        backend_port = yield listen(Factory.forProtocol(AnswerOnceThenClose), self)
        port = start_proxy(proxy_config([backend_port]), self)
        for _ in range(3):
            raw = yield raw_exchange(
                port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            )
            self.assertTrue(raw.startswith(b"HTTP/1.1 200 OK"), raw)


class SlowSite(server.Site):
    def log(self, request):
        pass


class NoRouteTests(TestCase):
    @inlineCallbacks
    def test_backend_errors_are_passed_through(self):
        class NotFound(resource.Resource):
            isLeaf = True

            def render(self, request):
                request.setResponseCode(404)
                return b"nope"

        backend_port = yield listen(SlowSite(NotFound()), self)
        port = start_proxy(proxy_config([backend_port]), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        status, _, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 404 Not Found")
        self.assertEqual(body, b"nope")


class RawBackendTests(TestCase):
    """
    Responses from a backend that writes its bytes by hand.
    """

    timeout = 15

    @inlineCallbacks
    def test_response_head_is_relayed_in_order_with_date_added(self):
        class Answer(Protocol):
            def dataReceived(self, data):
                self.transport.write(
                    b"HTTP/1.1 201 Made It\r\nSet-Cookie: a=1\r\nX-Order: 1\r\n"
                    b"Set-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
                )

        backend_port = yield listen(Factory.forProtocol(Answer), self)
        port = start_proxy(proxy_config([backend_port]), self)
        raw = yield raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 201 Made It")
        self.assertEqual(
            lines[1:5],
            [b"Set-Cookie: a=1", b"X-Order: 1", b"Set-Cookie: b=2", b"Content-Length: 2"],
        )
        names = [line.split(b":")[0].lower() for line in lines[1:]]
        self.assertIn(b"date", names)
        self.assertIn(b"x-request-id", names)
        self.assertIn(b"Connection: close", lines)
        self.assertEqual(body, b"ok")
