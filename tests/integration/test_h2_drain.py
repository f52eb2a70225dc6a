"""
Draining at a graceful shutdown and when a reload closes a listener, over
real sockets: HTTP/2 connections get GOAWAY with the last stream they
processed, finish it, and refuse streams opened after; WebSocket tunnels
are waited for until their ends close them or the deadline does.
"""

from __future__ import annotations

import shutil
import signal

import attr
from h2.errors import ErrorCodes
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web import server

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import TLS, Listener, ServerSettings, TLSCertificate
from txrevproxy.net.h2_drain import ANY_STREAM

from ..support.h2_client import connect_h2, connect_h2c
from ..support.loopback import connect_raw, listen, proxy_config
from ..support.origins import Scripted
from ..support.processes import proxy_process, temporary_directory
from ..support.tls_clients import CertificateMaker
from ..support.tunnels import HANDSHAKE, EchoFactory
from ..support.waiting import until

#: The body of a held response: several DATA frames.
BODY = b"z" * 100000

H2C_CONFIG = """
[listeners.web]
endpoint = "tcp:{port}:interface=127.0.0.1"
h2c = true

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:%d" }}]

[[routes]]
upstream = "app"
"""


class DrainCase(TestCase):
    """
    A proxy in front of a backend that holds the requests to C{/slow}
    until L{release}, and answers the others at once.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.backend = Scripted(self.answer)
        self.backend_port = yield listen(server.Site(self.backend), self)
        self.websockets = EchoFactory()
        self.websocket_port = yield listen(self.websockets, self)

    def answer(self, request):
        if request.path.startswith(b"/slow"):
            return server.NOT_DONE_YET
        return b"quick"

    def held(self):
        return [r for r in self.backend.requests if r.path.startswith(b"/slow")]

    def release(self) -> None:
        for request in self.held():
            request.write(BODY)
            request.finish()

    def start(self, tls: bool = False, shutdown_timeout: float = 30.0, backend=None):
        config = proxy_config(
            [backend or self.backend_port],
            server=ServerSettings(shutdown_timeout=shutdown_timeout),
        )
        if tls:
            cert, key = CertificateMaker(temporary_directory(self)).write(
                "localhost", ["localhost"]
            )
            listener = Listener("web", "tcp:0:interface=127.0.0.1", tls="main")
            blocks = {
                "main": TLS("main", (TLSCertificate(str(cert), str(key)),), default="localhost")
            }
        else:
            listener = Listener("web", "tcp:0:interface=127.0.0.1", h2c=True)
            blocks = {}
        self.config = attr.evolve(config, listeners={"web": listener}, tls=blocks)
        self.service = ProxyService(self.config, reactor)
        self.service.startService()
        self.addCleanup(self.stopped)
        return self.service.ports[0].getHost().port

    def stopped(self):
        if self.service.running:
            return self.service.stopService()

    @inlineCallbacks
    def connect(self, tls: bool = False):
        port = self.start(tls)
        client = yield (connect_h2 if tls else connect_h2c)(port)
        self.addCleanup(client.transport.loseConnection)
        return client

    @inlineCallbacks
    def drained_in_flight_stream(self, client):
        slow = client.request(b"GET", b"/slow")
        yield until(lambda: self.held())
        stopped = self.service.stopService()
        yield until(lambda: len(client.goaways) == 2)
        self.assertEqual(client.goaways, [ANY_STREAM, 1])
        self.assertEqual(client.terminated, ErrorCodes.NO_ERROR)

        late = yield client.request(b"GET", b"/late")
        self.assertEqual(late.reset, ErrorCodes.REFUSED_STREAM)
        self.assertEqual([r.path for r in self.backend.requests], [b"/slow"])
        self.assertFalse(stopped.called)

        self.release()
        response = yield slow
        self.assertEqual((response.status, response.reset), (200, None))
        self.assertEqual(response.body, BODY)
        yield client.closed
        yield stopped

    def test_shutdown_drains_h2c_with_goaway_and_finishes_the_stream(self):
        return self.connect().addCallback(self.drained_in_flight_stream)

    def test_shutdown_drains_http2_over_tls(self):
        return self.connect(tls=True).addCallback(self.drained_in_flight_stream)

    @inlineCallbacks
    def test_idle_http2_connection_gets_goaway_and_is_closed(self):
        client = yield self.connect()
        response = yield client.request(b"GET", b"/quick")
        self.assertEqual(response.body, b"quick")
        yield self.service.stopService()
        yield client.closed
        self.assertEqual(client.goaways, [ANY_STREAM, 1])

    @inlineCallbacks
    def test_busy_http2_connection_is_closed_at_the_deadline(self):
        port = self.start(shutdown_timeout=0.2)
        client = yield connect_h2c(port)
        slow = client.request(b"GET", b"/slow")
        yield until(lambda: self.held())
        yield self.service.stopService()
        yield client.closed
        self.assertEqual(client.goaways, [ANY_STREAM, 1])
        yield self.assertFailure(slow, Exception)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_reload_that_moves_the_listener_drains_its_http2_connections(self):
        client = yield self.connect()
        slow = client.request(b"GET", b"/slow")
        yield until(lambda: self.held())
        # Another endpoint description: a new socket, the old one closes.
        listener = attr.evolve(
            self.config.listeners["web"], endpoint="tcp:0:interface=127.0.0.1:backlog=64"
        )
        moved = attr.evolve(self.config, listeners={"web": listener})
        self.assertEqual(self.service.reload(moved), [])
        yield until(lambda: len(client.goaways) == 2)
        self.assertEqual(client.goaways, [ANY_STREAM, 1])
        self.release()
        response = yield slow
        self.assertEqual(response.body, BODY)
        yield client.closed

    @inlineCallbacks
    def test_curl_gets_its_whole_response_through_a_shutdown(self):
        port = self.start()
        fetched = getProcessOutputAndValue(
            shutil.which("curl"),
            ["-sS", "--http2-prior-knowledge", "http://127.0.0.1:%d/slow" % (port,)],
            env={},
            reactor=reactor,
        )
        yield until(lambda: self.held())
        stopped = self.service.stopService()
        self.release()
        out, err, code = yield fetched
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out, BODY)
        yield stopped

    @inlineCallbacks
    def test_websocket_tunnel_stays_up_during_the_drain_until_its_client_closes(self):
        port = self.start(backend=self.websocket_port)
        client = yield connect_raw(port, HANDSHAKE)
        yield until(lambda: b"hello from backend" in client.received)
        stopped = self.service.stopService()
        client.received = b""
        client.transport.write(b"still there")
        yield until(lambda: client.received == b"STILL THERE")
        self.assertFalse(stopped.called)
        client.transport.loseConnection()
        yield stopped
        yield self.websockets.closed

    @inlineCallbacks
    def test_websocket_tunnel_is_closed_at_the_shutdown_deadline(self):
        port = self.start(backend=self.websocket_port, shutdown_timeout=0.2)
        client = yield connect_raw(port, HANDSHAKE)
        yield until(lambda: b"hello from backend" in client.received)
        yield self.service.stopService()
        yield client.closed
        yield self.websockets.closed
        self.flushLoggedErrors()


class SigtermTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_sigterm_to_twistd_drains_an_h2c_stream(self):
        backend = Scripted(lambda request: server.NOT_DONE_YET)
        backend_port = yield listen(server.Site(backend), self)
        with proxy_process(
            temporary_directory(self), [], H2C_CONFIG % (backend_port,)
        ) as proxy:
            client = yield connect_h2c(proxy.port)
            self.addCleanup(client.transport.loseConnection)
            slow = client.request(b"GET", b"/slow")
            yield until(lambda: backend.requests)
            proxy.process.send_signal(signal.SIGTERM)
            yield until(lambda: len(client.goaways) == 2)
            self.assertEqual(client.goaways, [ANY_STREAM, 1])
            backend.requests[0].write(BODY)
            backend.requests[0].finish()
            response = yield slow
            self.assertEqual((response.status, response.body), (200, BODY))
            yield client.closed
            yield until(lambda: proxy.process.poll() is not None)
            self.assertEqual(proxy.process.returncode, 0)
