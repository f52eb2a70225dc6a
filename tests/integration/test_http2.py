"""
HTTP/2 on a TLS listener, proxied to HTTP/1.1 backends, over real loopback
sockets and real handshakes: the same semantics as for HTTP/1.1 clients.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web import resource

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import TLS, Listener, ServerSettings, TLSCertificate

from ..support.h2_client import connect_h2
from ..support.loopback import CountingSite, Echo, echoed_headers, listen, proxy_config
from ..support.processes import free_port, temporary_directory
from ..support.tls_clients import CertificateMaker, ProbingClientTLS, connect_tls

BIG = 2 * 1024 * 1024


class Big(resource.Resource):
    """
    Answers with L{BIG} bytes.
    """

    isLeaf = True

    def render(self, request):
        return b"x" * BIG


class CutShort(Protocol):
    """
    A backend that promises L{BIG} bytes and closes after half of them.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (BIG,)
            + b"x" * (BIG // 2)
        )
        self.transport.loseConnection()
        self.dataReceived = lambda data: None


class HTTP2Case(TestCase):
    """
    A proxy with an HTTP/2 TLS listener (L{start}) in front of an echo
    backend, and an HTTP/2 client (L{connect}).
    """

    @inlineCallbacks
    def setUp(self):
        directory = temporary_directory(self)
        self.certificate = CertificateMaker(directory).write("localhost", ["localhost"])
        self.backend = CountingSite(Echo())
        self.backend_port = yield listen(self.backend, self)
        self.big_port = yield listen(CountingSite(Big()), self)
        self.cut_port = yield listen(Factory.forProtocol(CutShort), self)

    def start(self, backend_port=None, http2=True, **server):
        config = proxy_config(
            [backend_port or self.backend_port], server=ServerSettings(**server)
        )
        cert, key = self.certificate
        config = config.__class__(
            server=config.server,
            listeners={
                "websecure": Listener(
                    "websecure", "tcp:0:interface=127.0.0.1", tls="main", http2=http2
                )
            },
            upstreams=config.upstreams,
            routes=config.routes,
            tls={
                "main": TLS(
                    "main", (TLSCertificate(str(cert), str(key)),), default="localhost"
                )
            },
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service.ports[0].getHost().port

    @inlineCallbacks
    def connect(self, port, validate=True):
        client = yield connect_h2(port, validate=validate)
        self.assertEqual(client.transport.negotiatedProtocol, b"h2")

        def close():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(close)
        return client


class HTTP2Tests(HTTP2Case):

    @inlineCallbacks
    def test_get_is_proxied_with_http1_semantics(self):
        client = yield self.connect(self.start())
        response = yield client.request(
            b"GET",
            b"/hello?q=1",
            headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"te", b"trailers")],
        )
        self.assertEqual(response.status, 200)
        self.assertTrue(response.body.startswith(b"GET /hello?q=1 0\n"))
        seen = echoed_headers(response.body)
        self.assertEqual(seen[b"host"], [b"localhost"])
        self.assertEqual(seen[b"via"], [b"2 txrevproxy"])
        self.assertEqual(seen[b"x-forwarded-proto"], [b"https"])
        self.assertEqual(seen[b"x-forwarded-for"], [b"127.0.0.1"])
        # Cookie crumbs are joined for HTTP/1.1 (RFC 9113 section 8.2.3);
        # TE is hop-by-hop.
        self.assertEqual(seen[b"cookie"], [b"a=1; b=2"])
        self.assertNotIn(b"te", seen)
        self.assertEqual(seen[b"x-request-id"], [response.header(b"x-request-id")])
        self.assertIsNotNone(response.header(b"date"))
        self.assertIsNone(response.header(b"connection"))

    @inlineCallbacks
    def test_concurrent_streams_share_one_connection(self):
        client = yield self.connect(self.start())
        responses = yield gatherResults(
            [client.request(b"GET", b"/n%d" % (i,)) for i in range(20)]
        )
        self.assertEqual(
            [r.body.split(b"\n", 1)[0] for r in responses],
            [b"GET /n%d 0" % (i,) for i in range(20)],
        )

    @inlineCallbacks
    def test_uploads_stream_with_or_without_a_length(self):
        client = yield self.connect(self.start())
        body = b"u" * (1024 * 1024 + 7)
        with_length = yield client.request(
            b"POST",
            b"/up",
            headers=[(b"content-length", b"%d" % (len(body),))],
            body=body,
        )
        self.assertTrue(with_length.body.startswith(b"POST /up %d\n" % (len(body),)))
        self.assertEqual(
            echoed_headers(with_length.body)[b"content-length"], [b"%d" % len(body)]
        )
        without = yield client.request(b"PUT", b"/up", body=body)
        self.assertTrue(without.body.startswith(b"PUT /up %d\n" % (len(body),)))
        self.assertEqual(
            echoed_headers(without.body)[b"transfer-encoding"], [b"chunked"]
        )

    @inlineCallbacks
    def test_post_without_a_body(self):
        client = yield self.connect(self.start())
        response = yield client.request(b"POST", b"/empty")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.body.startswith(b"POST /empty 0\n"))

    @inlineCallbacks
    def test_large_response_flows_through_the_window(self):
        client = yield self.connect(self.start(self.big_port))
        response = yield client.request(b"GET", b"/big")
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), BIG)
        self.assertIsNone(response.reset)

    @inlineCallbacks
    def test_head_has_no_body(self):
        client = yield self.connect(self.start(self.big_port))
        response = yield client.request(b"HEAD", b"/big")
        self.assertEqual((response.status, response.body), (200, b""))
        self.assertEqual(response.header(b"content-length"), b"%d" % (BIG,))

    @inlineCallbacks
    def test_backend_dying_mid_response_resets_the_stream(self):
        client = yield self.connect(self.start(self.cut_port))
        response = yield client.request(b"GET", b"/cut")
        self.assertEqual(response.status, 200)
        self.assertIsNotNone(response.reset)
        self.assertLess(len(response.body), BIG)
        # The connection goes on.
        again = yield client.request(b"GET", b"/cut")
        self.assertIsNotNone(again.reset)

    @inlineCallbacks
    def test_refused_backend_gives_502_without_connection_fields(self):
        client = yield self.connect(self.start(free_port()))
        response = yield client.request(b"GET", b"/")
        self.assertEqual(response.status, 502)
        self.assertIn(response.header(b"x-request-id"), response.body)
        self.assertIsNone(response.header(b"connection"))
        # A request with a body too: the answer ends the stream only.
        response = yield client.request(b"POST", b"/", body=b"x" * 100000)
        self.assertEqual(response.status, 502)

    @inlineCallbacks
    def test_body_over_the_limit_gets_413(self):
        client = yield self.connect(self.start(max_request_body=1000))
        declared = yield client.request(
            b"POST", b"/", headers=[(b"content-length", b"5000")], body=b"x" * 5000
        )
        self.assertEqual(declared.status, 413)
        streamed = yield client.request(b"POST", b"/", body=b"x" * 5000)
        self.assertEqual(streamed.status, 413)
        fine = yield client.request(b"POST", b"/", body=b"x" * 10)
        self.assertEqual(fine.status, 200)

    @inlineCallbacks
    def test_http1_clients_still_served_on_the_listener(self):
        port = self.start()
        client = yield connect_tls(
            port, ProbingClientTLS("localhost", alpn=[b"h2", b"http/1.1"])
        )
        self.addCleanup(client.transport.loseConnection)
        self.assertEqual(client.transport.negotiatedProtocol, b"h2")
        client.transport.loseConnection()
        yield client.closed
        client = yield connect_tls(
            port, ProbingClientTLS("localhost", alpn=[b"http/1.1"])
        )
        self.addCleanup(client.transport.loseConnection)
        response = yield client.request(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"via: 1.1 txrevproxy", response)


class HTTP2FilterTests(TestCase):
    """
    Filters see HTTP/2 streams like HTTP/1.1 requests: their answers and
    the fields they add go out as HTTP/2 fields.
    """

    @inlineCallbacks
    def test_filters_over_http2(self):
        from ..support.configs import parse

        directory = temporary_directory(self)
        cert, key = CertificateMaker(directory).write("localhost", ["localhost"])
        backend_port = yield listen(CountingSite(Echo()), self)
        config = parse(
            """
[listeners.websecure]
endpoint = "tcp:0:interface=127.0.0.1"
tls = "main"
filters = ["secure", "limit"]

[tls.main]
certificates = [{ cert = "%s", key = "%s" }]

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
upstream = "app"

[filters.secure]
type = "security_headers"

[filters.limit]
type = "rate_limit"
rate = "1/m"
burst = 2
"""
            % (cert, key, backend_port)
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        client = yield connect_h2(service.ports[0].getHost().port)

        def close():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(close)
        first = yield client.request(b"GET", b"/")
        self.assertEqual(first.status, 200)
        self.assertEqual(first.header(b"strict-transport-security")[:8], b"max-age=")
        self.assertEqual(first.header(b"ratelimit-remaining"), b"1")
        yield client.request(b"GET", b"/")
        refused = yield client.request(b"GET", b"/")
        self.assertEqual(refused.status, 429)
        self.assertEqual(refused.header(b"retry-after"), b"60")
        self.assertEqual(refused.header(b"x-content-type-options"), b"nosniff")


class HTTP2FramingTests(HTTP2Case):
    """
    The request rules of an HTTP/1.1 head (underscores, Content-Length,
    bodies on methods that define none) hold for HTTP/2 streams, and what
    RFC 9113 section 8.2 forbids never reaches a backend.
    """

    @inlineCallbacks
    def assertRefused(self, headers, method=b"GET", body=None, **server):
        """
        The stream gets 400 and the backend sees nothing; the connection
        goes on serving other streams.
        """
        client = yield self.connect(self.start(**server))
        refused = yield client.request(method, b"/", headers=headers, body=body)
        self.assertEqual(refused.status, 400)
        self.assertEqual(self.backend.connections, 0)
        ok = yield client.request(b"GET", b"/after")
        self.assertTrue(ok.body.startswith(b"GET /after 0\n"))

    @inlineCallbacks
    def assertConnectionError(self, headers):
        """
        C{h2} ends the connection with PROTOCOL_ERROR (RFC 9113 section
        5.4.1 lets a stream error be one) and the backend sees nothing.
        """
        client = yield self.connect(self.start(), validate=False)
        yield self.assertFailure(
            client.request(b"GET", b"/", headers=headers), Exception
        )
        self.assertEqual(client.terminated, 1)
        self.assertEqual(self.backend.connections, 0)

    def test_underscore_lookalike_of_a_framing_field_is_refused(self):
        return self.assertRefused([(b"content_length", b"5")])

    def test_underscore_lookalike_of_a_field_the_proxy_sets_is_refused(self):
        return self.assertRefused([(b"x_forwarded_for", b"10.0.0.1")])

    @inlineCallbacks
    def test_underscored_field_is_forwarded_or_dropped(self):
        client = yield self.connect(self.start())
        response = yield client.request(b"GET", b"/", headers=[(b"x_api_key", b"k")])
        self.assertEqual(echoed_headers(response.body)[b"x_api_key"], [b"k"])
        client = yield self.connect(self.start(underscores_in_headers="drop"))
        response = yield client.request(
            b"GET", b"/", headers=[(b"x_api_key", b"k"), (b"x-b", b"1")]
        )
        seen = echoed_headers(response.body)
        self.assertNotIn(b"x_api_key", seen)
        self.assertEqual(seen[b"x-b"], [b"1"])

    def test_content_length_twice_is_refused(self):
        return self.assertRefused(
            [(b"content-length", b"2"), (b"content-length", b"2")],
            method=b"POST",
            body=b"ab",
        )

    @inlineCallbacks
    def test_get_body_is_forwarded_framed(self):
        """
        C{body_without_semantics = "forward_and_close"}: a GET's body goes
        to the backend with framing of its own (Twisted takes a GET without
        Content-Length for one without a body; the DATA frames say).
        """
        client = yield self.connect(self.start())
        response = yield client.request(b"GET", b"/g", body=b"hello")
        self.assertTrue(response.body.startswith(b"GET /g 5\n"), response.body)
        self.assertEqual(
            echoed_headers(response.body)[b"transfer-encoding"], [b"chunked"]
        )
        declared = yield client.request(
            b"DELETE", b"/d", headers=[(b"content-length", b"3")], body=b"abc"
        )
        self.assertTrue(declared.body.startswith(b"DELETE /d 3\n"), declared.body)

    @inlineCallbacks
    def test_methods_without_a_body_are_not_chunked(self):
        client = yield self.connect(self.start())
        for method in (b"DELETE", b"OPTIONS"):
            response = yield client.request(method, b"/", body=b"")
            self.assertTrue(response.body.startswith(method + b" / 0\n"))
            self.assertNotIn(b"transfer-encoding", echoed_headers(response.body))

    def test_get_body_is_refused_when_configured(self):
        return self.assertRefused(
            [], body=b"hello", body_without_semantics="refuse"
        )

    def test_declared_get_body_is_refused_when_configured(self):
        return self.assertRefused(
            [(b"content-length", b"5")],
            method=b"OPTIONS",
            body=b"hello",
            body_without_semantics="refuse",
        )

    def test_trace_body_is_always_refused(self):
        return self.assertRefused([], method=b"TRACE", body=b"x")

    def test_uppercase_field_name(self):
        return self.assertConnectionError([(b"X-Upper", b"1")])

    @inlineCallbacks
    def test_connection_specific_fields(self):
        for name in (b"connection", b"keep-alive", b"proxy-connection", b"upgrade"):
            yield self.assertConnectionError([(name, b"x")])

    def test_transfer_encoding(self):
        return self.assertConnectionError([(b"transfer-encoding", b"chunked")])

    def test_te_other_than_trailers(self):
        return self.assertConnectionError([(b"te", b"gzip")])

    @inlineCallbacks
    def test_line_breaks_and_nul_in_a_value(self):
        for value in (b"a\r\nx-injected: 1", b"a\nb", b"a\x00b"):
            yield self.assertConnectionError([(b"x-a", value)])

    @inlineCallbacks
    def test_whitespace_around_a_value(self):
        for value in (b" a", b"a ", b"\ta"):
            yield self.assertConnectionError([(b"x-a", value)])
