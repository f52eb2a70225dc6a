"""
Integration tests of TLS over real loopback sockets and real handshakes:
certificates chosen by SNI, the protocol policy, ALPN, hot reload of
certificates, and TLS to https backends.
"""

from __future__ import annotations

from OpenSSL import SSL
from OpenSSL._util import lib as openssl
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txrevproxy.config.model import (
    BackendServer,
    Config,
    Upstream,
)

from ..support.loopback import (
    CountingSite,
    Echo,
    echoed_headers,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)
from ..support.processes import temporary_directory
from ..support.tls_clients import (
    CertificateMaker,
    ProbingClientTLS,
    connect_tls,
    peer_names,
    tls_site_factory,
)
from ..support.tls_listeners import TLSListenerCase
from ..support.tunnels import HANDSHAKE, EchoFactory

REQUEST = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"


class ReturnBody(Resource):
    """
    Answers with the request body.
    """

    isLeaf = True

    def render(self, request):
        return request.content.read()


def serial(client) -> int:
    return client.transport.getPeerCertificate().get_serial_number()


class TLSListenerTests(TLSListenerCase):
    """
    A listener with C{tls} in front of a plain HTTP backend.
    """

    def connect(self, port, server_name=None, **options):
        return self.connect_with(port, ProbingClientTLS(server_name, **options))

    def connect_with(self, port, creator):
        d = connect_tls(port, creator)

        def connected(client):
            def close():
                client.transport.loseConnection()
                return client.closed

            self.addCleanup(close)
            return client

        return d.addCallback(connected)

    @inlineCallbacks
    def test_each_name_gets_its_certificate(self):
        port = self.start()
        for name, expected in [
            ("localhost", ("localhost",)),
            ("other.test", ("other.test", "www.other.test")),
            ("www.other.test", ("other.test", "www.other.test")),
            ("LOCALHOST", ("localhost",)),
        ]:
            client = yield self.connect(port, name)
            self.assertEqual(peer_names(client), expected, name)

    @inlineCallbacks
    def test_wildcard_covers_exactly_one_label(self):
        port = self.start()
        client = yield self.connect(port, "a.example.test")
        self.assertEqual(peer_names(client), ("*.example.test",))
        for name in ("a.b.example.test", "example.test"):
            client = yield self.connect(port, name)
            self.assertEqual(peer_names(client), ("localhost",), name)

    @inlineCallbacks
    def test_unknown_or_absent_name_gets_the_default(self):
        port = self.start()
        client = yield self.connect(port, "unknown.test")
        self.assertEqual(peer_names(client), ("localhost",))
        client = yield self.connect(port, None)
        self.assertEqual(peer_names(client), ("localhost",))

    @inlineCallbacks
    def test_tls_1_0_and_1_1_are_refused(self):
        port = self.start()
        for version in (SSL.TLS1_VERSION, SSL.TLS1_1_VERSION):
            yield self.assertFailure(
                self.connect(port, "localhost", version=version), SSL.Error
            )
        client = yield self.connect(port, "localhost", version=SSL.TLS1_2_VERSION)
        self.assertEqual(peer_names(client), ("localhost",))

    @inlineCallbacks
    def test_min_version_1_3_refuses_1_2(self):
        port = self.start(min_version="1.3")
        yield self.assertFailure(
            self.connect(port, "localhost", version=SSL.TLS1_2_VERSION), SSL.Error
        )
        client = yield self.connect(port, "localhost", version=SSL.TLS1_3_VERSION)
        self.assertEqual(peer_names(client), ("localhost",))

    @inlineCallbacks
    def test_alpn_picks_h2_when_http2_is_on(self):
        port = self.start(http2=True)
        client = yield self.connect(port, "localhost", alpn=[b"h2", b"http/1.1"])
        self.assertEqual(client.transport.negotiatedProtocol, b"h2")
        client = yield self.connect(port, "localhost", alpn=[b"http/1.1"])
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")
        client = yield self.connect(port, "localhost", alpn=[b"spdy/3"])
        self.assertIsNone(client.transport.negotiatedProtocol)

    @inlineCallbacks
    def test_alpn_offers_http1_without_http2(self):
        port = self.start(http2=False)
        client = yield self.connect(port, "localhost", alpn=[b"h2", b"http/1.1"])
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")

    def client_certificates(self):
        """
        A client CA (other than the servers') with a client certificate for
        alice, and a client certificate for mallory from a CA nobody trusts.
        """
        (self.directory / "clients").mkdir()
        (self.directory / "others").mkdir()
        trusted = CertificateMaker(self.directory / "clients")
        alice = trusted.write("alice", ["alice.test"], client=True)
        untrusted = CertificateMaker(self.directory / "others")
        mallory = untrusted.write("mallory", ["mallory.test"], client=True)
        return trusted.ca_path, alice, mallory

    @inlineCallbacks
    def assertRefused(self, port, **options):
        """
        The listener refuses the client: the handshake fails, or (TLS 1.3,
        where the client finishes first) the connection closes without an
        answer to the request.
        """
        try:
            client = yield connect_tls(port, ProbingClientTLS("localhost", **options))
        except Exception:
            return
        client.transport.write(REQUEST)
        received = yield client.closed
        self.assertNotIn(b"HTTP/1.1", received)

    @inlineCallbacks
    def test_mutual_tls_passes_the_verified_subject_and_drops_a_forged_one(self):
        client_ca, alice, mallory = self.client_certificates()
        port = self.start(client_ca=str(client_ca), subject_header="X-Client-Subject")
        client = yield self.connect(port, "localhost", certificate=alice)
        response = yield client.request(
            b"GET /hello HTTP/1.1\r\nHost: localhost\r\n"
            b"X-Client-Subject: CN=admin\r\n\r\n"
        )
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        seen = echoed_headers(response.partition(b"\r\n\r\n")[2])
        self.assertEqual(
            seen[b"x-client-subject"], [b"CN=alice.test,O=txrevproxy development"]
        )

    @inlineCallbacks
    def test_mutual_tls_refuses_missing_and_untrusted_certificates(self):
        client_ca, alice, mallory = self.client_certificates()
        port = self.start(client_ca=str(client_ca))
        yield self.assertRefused(port)
        yield self.assertRefused(port, certificate=mallory)

    @inlineCallbacks
    def test_optional_client_auth_serves_clients_without_a_certificate(self):
        client_ca, alice, mallory = self.client_certificates()
        port = self.start(
            client_ca=str(client_ca),
            client_auth="optional",
            subject_header="X-Client-Subject",
        )
        client = yield self.connect(port, "localhost")
        response = yield client.request(
            b"GET /hello HTTP/1.1\r\nHost: localhost\r\n"
            b"X-Client-Subject: CN=admin\r\n\r\n"
        )
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        seen = echoed_headers(response.partition(b"\r\n\r\n")[2])
        self.assertNotIn(b"x-client-subject", seen)
        yield self.assertRefused(port, certificate=mallory)

    @inlineCallbacks
    def test_websocket_through_a_tls_listener(self):
        backend = EchoFactory()
        backend_port = yield listen(backend, self)
        self.backend_port = backend_port
        port = self.start()
        client = yield self.connect(port, "localhost", alpn=[b"http/1.1"])
        client.transport.write(HANDSHAKE)
        while b"hello from backend" not in client.received:
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101 "), client.received)
        client.received = b""
        client.transport.write(b"over tls")
        while client.received != b"OVER TLS":
            yield deferLater(reactor, 0.01, lambda: None)

    @inlineCallbacks
    def test_bodies_larger_than_a_tls_record_pass_whole_both_ways(self):
        """
        The listener's reads out of OpenSSL are sized to what came in (see
        L{txrevproxy.net.sized_reads}); bodies of many records, sent in one
        write, still arrive whole and in order.
        """
        self.backend_port = yield listen(Site(ReturnBody()), self)
        port = self.start(http2=False)
        client = yield self.connect(port, "localhost")
        body = bytes(range(256)) * 1200
        response = yield client.request(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        head, _, received = response.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertEqual(received, body)
        small = yield client.request(REQUEST)
        self.assertTrue(small.startswith(b"HTTP/1.1 200 "), small)

    @inlineCallbacks
    def test_hsts_is_added_to_responses(self):
        port = self.start(hsts="max-age=31536000; includeSubDomains")
        client = yield self.connect(port, "localhost", alpn=[b"http/1.1"])
        response = yield client.request(REQUEST)
        head = response.partition(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertTrue(head[0].startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(
            b"Strict-Transport-Security: max-age=31536000; includeSubDomains", head
        )

    @inlineCallbacks
    def test_plain_listener_redirects_to_the_https_listener(self):
        https_port = self.start(redirect=True)
        http_port = self.service.ports[1].getHost().port
        raw = yield raw_exchange(
            http_port,
            b"POST /a/b?c=d HTTP/1.1\r\nHost: shop.test:%d\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n" % (http_port,),
        )
        head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(head[0], b"HTTP/1.1 308 Permanent Redirect")
        self.assertIn(
            b"Location: https://shop.test:%d/a/b?c=d" % (https_port,), head
        )

    @inlineCallbacks
    def test_http1_request_is_forwarded_with_forwarded_proto_https(self):
        port = self.start()
        client = yield self.connect(port, "localhost", alpn=[b"http/1.1"])
        response = yield client.request(REQUEST)
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        body = response.partition(b"\r\n\r\n")[2]
        self.assertTrue(body.startswith(b"GET /hello "), body)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-proto"], [b"https"])

    @inlineCallbacks
    def test_session_is_resumed(self):
        port = self.start()
        creator = ProbingClientTLS("localhost")
        first = yield connect_tls(port, creator)
        # Under TLS 1.3 the ticket comes after the handshake: wait for a
        # response before taking the session.
        yield first.request(REQUEST)
        creator.session = first.transport._tlsConnection.get_session()
        first.transport.loseConnection()
        yield first.closed
        second = yield self.connect_with(port, creator)
        # pyOpenSSL has no public way to ask.
        connection = second.transport._tlsConnection
        self.assertEqual(openssl.SSL_session_reused(connection._ssl), 1)

    @inlineCallbacks
    def test_reload_serves_new_certificate_and_keeps_open_connections(self):
        port = self.start()
        old = yield self.connect(port, "localhost")
        yield old.request(REQUEST)
        old_serial = serial(old)
        self.maker.write("localhost", ["localhost"])
        self.assertEqual(self.service.reload_certificates(), [])
        new = yield self.connect(port, "localhost")
        self.assertNotEqual(serial(new), old_serial)
        response = yield old.request(REQUEST)
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertEqual(serial(old), old_serial)

    @inlineCallbacks
    def test_reload_with_a_broken_certificate_keeps_the_old_one(self):
        port = self.start()
        before = yield self.connect(port, "other.test")
        cert, key = self.other
        key.write_bytes(self.localhost[1].read_bytes())
        problems = self.service.reload_certificates()
        self.assertEqual(
            problems,
            [
                "tls.main.certificates[2].key: %s: does not match the certificate %s"
                % (key, cert)
            ],
        )
        after = yield self.connect(port, "other.test")
        self.assertEqual(serial(after), serial(before))
        cert.unlink()
        problems = self.service.reload_certificates()
        self.assertEqual(
            problems, ["tls.main.certificates[2].cert: %s: no such file" % (cert,)]
        )
        after = yield self.connect(port, "other.test")
        self.assertEqual(serial(after), serial(before))


class BackendTLSTests(TestCase):
    """
    C{https://} backends: verified against the URL's host or
    C{tls_server_name}, trusting the C{ca} file.
    """

    @inlineCallbacks
    def setUp(self):
        directory = temporary_directory(self)
        self.maker = CertificateMaker(directory)
        cert, key = self.maker.write("backend", ["localhost"])
        site = CountingSite(Echo())
        self.port = yield listen(tls_site_factory(site, cert, key), self)
        # Run after the proxy stops: its pooled TLS connections take a
        # round trip to close.
        self.addCleanup(lambda: DeferredList(list(site.lost)))
        (directory / "stranger").mkdir()
        self.stranger = CertificateMaker(directory / "stranger")

    def proxy(self, url: str, host: str, **tls) -> int:
        server = BackendServer(url % (self.port,), "https", host, self.port, **tls)
        config = proxy_config([])
        config = Config(
            server=config.server,
            listeners=config.listeners,
            upstreams={"app": Upstream("app", (server,))},
            routes=config.routes,
        )
        return start_proxy(config, self)

    @inlineCallbacks
    def status(self, url: str = "https://127.0.0.1:%d", host: str = "127.0.0.1", **tls):
        """
        Send a request through a proxy in front of the backend; return the
        status line the client got.
        """
        port = self.proxy(url, host, **tls)
        response = yield raw_exchange(
            port, b"GET /x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
        )
        return response.partition(b"\r\n")[0]

    @inlineCallbacks
    def test_backend_certificate_from_the_ca_is_accepted(self):
        status = yield self.status(ca=str(self.maker.ca_path), tls_server_name="localhost")
        self.assertEqual(status, b"HTTP/1.1 200 OK")

    @inlineCallbacks
    def test_backend_name_from_the_url_is_verified(self):
        status = yield self.status(
            "https://localhost:%d", "localhost", ca=str(self.maker.ca_path)
        )
        self.assertEqual(status, b"HTTP/1.1 200 OK")

    @inlineCallbacks
    def test_untrusted_backend_certificate_is_a_502(self):
        status = yield self.status(
            ca=str(self.stranger.ca_path), tls_server_name="localhost"
        )
        self.assertEqual(status, b"HTTP/1.1 502 Bad Gateway")

    @inlineCallbacks
    def test_backend_certificate_for_another_name_is_a_502(self):
        status = yield self.status(
            ca=str(self.maker.ca_path), tls_server_name="other.test"
        )
        self.assertEqual(status, b"HTTP/1.1 502 Bad Gateway")

    @inlineCallbacks
    def test_verify_false_accepts_any_certificate(self):
        status = yield self.status(ca=str(self.stranger.ca_path), verify=False)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
