"""
HTTP/2 to backends (C{protocol = "h2"}): a Twisted site speaking HTTP/2
over TLS (chosen by ALPN) behind the proxy, whose clients speak HTTP/2 to
it, over real loopback sockets and handshakes; and curl as a client.
"""

from __future__ import annotations

import subprocess

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web import resource

from txrevproxy.config.model import HealthCheck
from txrevproxy.upstream.health import HealthChecker

from ..support.h2_client import connect_h2
from ..support.h2_upstreams import h2_proxy
from ..support.loopback import CountingSite, Echo
from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker, tls_site_factory
from ..support.waiting import until

BIG = 4 * 1024 * 1024


class Backend(resource.Resource):
    """
    C{/big} answers L{BIG} bytes; C{/healthz} passes requests over
    HTTP/2 only; anything else is an L{Echo} that first
    says which HTTP version the request came over.
    """

    isLeaf = True

    def render(self, request):
        if request.path == b"/big":
            return b"x" * BIG
        if request.path == b"/healthz":
            request.setResponseCode(200 if request.clientproto == b"HTTP/2" else 500)
            return b""
        return request.clientproto + b"\n" + Echo().render(request)


class H2UpstreamCase(TestCase):
    """
    A backend speaking HTTP/2 over TLS, and a proxy in front of it.
    """

    @inlineCallbacks
    def setUp(self):
        self.maker = CertificateMaker(temporary_directory(self))
        self.certificate = self.maker.write("localhost", ["localhost"])
        self.backend = CountingSite(Backend())
        self.backend_port = yield self.listen(self.backend, [b"h2"])

    @inlineCallbacks
    def listen(self, site, protocols):
        cert, key = self.certificate
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(tls_site_factory(site, cert, key, protocols))
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def start(self, backend_port=None, **upstream):
        return h2_proxy(
            self,
            self.certificate,
            "https://127.0.0.1:%d" % (backend_port or self.backend_port,),
            "h2",
            ca=str(self.maker.ca_path),
            tls_server_name="localhost",
            **upstream,
        )

    @inlineCallbacks
    def connect(self, port):
        client = yield connect_h2(port)

        def close():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(close)
        return client


class H2UpstreamTests(H2UpstreamCase):
    @inlineCallbacks
    def test_requests_reach_the_backend_over_http2(self):
        client = yield self.connect(self.start())
        response = yield client.request(b"GET", b"/hello?q=1")
        self.assertEqual(response.status, 200)
        lines = response.body.split(b"\n")
        self.assertEqual(lines[0], b"HTTP/2")
        self.assertEqual(lines[1], b"GET /hello?q=1 0")
        self.assertIn(b"via: 2 txrevproxy", lines)
        self.assertIn(b"te: trailers", lines)

    @inlineCallbacks
    def test_concurrent_requests_share_one_backend_connection(self):
        client = yield self.connect(self.start())
        responses = yield gatherResults(
            [client.request(b"GET", b"/n%d" % (i,)) for i in range(30)]
        )
        self.assertEqual(
            [r.body.split(b"\n")[1] for r in responses],
            [b"GET /n%d 0" % (i,) for i in range(30)],
        )
        self.assertEqual(self.backend.connections, 1)

    @inlineCallbacks
    def test_max_streams_opens_more_connections(self):
        client = yield self.connect(self.start(max_streams=5))
        responses = yield gatherResults(
            [client.request(b"GET", b"/n%d" % (i,)) for i in range(12)]
        )
        self.assertEqual({r.status for r in responses}, {200})
        self.assertEqual(self.backend.connections, 3)

    @inlineCallbacks
    def test_uploads_larger_than_the_windows_arrive_whole(self):
        client = yield self.connect(self.start())
        body = b"u" * (1024 * 1024 + 7)
        response = yield client.request(b"POST", b"/up", body=body)
        self.assertEqual(response.body.split(b"\n")[1], b"POST /up %d" % (len(body),))

    @inlineCallbacks
    def test_a_slow_client_stalls_its_own_stream_only(self):
        """
        A client that stops reading one large response leaves that
        stream's window closed up to the backend; another client's large
        response on the same backend connection still arrives whole.
        """
        port = self.start()
        slow = yield self.connect(port)
        fast = yield self.connect(port)
        slow.reading = False
        stalled = slow.request(b"GET", b"/big")
        yield until(lambda: slow._unread)
        response = yield fast.request(b"GET", b"/big")
        self.assertEqual(len(response.body), BIG)
        self.assertFalse(stalled.called)
        self.assertEqual(self.backend.connections, 1)
        slow.read()
        response = yield stalled
        self.assertEqual(len(response.body), BIG)

    @inlineCallbacks
    def test_curl_over_http2_through_an_http2_backend(self):
        port = self.start()
        result = yield deferToThread(
            subprocess.run,
            [
                "curl",
                "--silent",
                "--http2",
                "--cacert",
                str(self.maker.ca_path),
                "--write-out",
                "\n%{http_version} %{http_code}",
                "https://localhost:%d/curl" % (port,),
            ],
            capture_output=True,
            timeout=30,
        )
        lines = result.stdout.split(b"\n")
        self.assertEqual(lines[0], b"HTTP/2")
        self.assertEqual(lines[1], b"GET /curl 0")
        self.assertEqual(lines[-1], b"2 200")

    @inlineCallbacks
    def test_h2load_through_an_http2_backend(self):
        port = self.start(max_streams=20)
        result = yield deferToThread(
            subprocess.run,
            [
                "h2load",
                "--requests=300",
                "--clients=3",
                "--max-concurrent-streams=20",
                "https://localhost:%d/load" % (port,),
            ],
            capture_output=True,
            timeout=60,
        )
        self.assertIn(
            b"300 total, 300 started, 300 done, 300 succeeded, 0 failed, 0 errored",
            result.stdout,
        )
        self.assertIn(b"status codes: 300 2xx", result.stdout)
        # 60 streams at most at once, 20 a connection.
        self.assertLessEqual(self.backend.connections, 3)
        self.assertEqual(self.proxy_service.runtime.balancers["app"].in_flight, 0)

    @inlineCallbacks
    def test_health_checks_speak_http2(self):
        self.start()
        balancer = self.proxy_service.runtime.balancers["app"]
        checker = HealthChecker(
            balancer,
            HealthCheck(path="/healthz", interval=3600.0, timeout=10.0),
            reactor,
            FirstRoundNow(),
        )
        checker.startService()
        self.addCleanup(checker.stopService)
        backend = balancer.backends[0]
        yield until(lambda: backend.last_check is not None)
        self.assertEqual(backend.last_check, "passed: HTTP 200")


class FirstRoundNow:
    """
    The randomness of a health checker whose first round starts at once.
    """

    def uniform(self, low: float, high: float) -> float:
        return low
