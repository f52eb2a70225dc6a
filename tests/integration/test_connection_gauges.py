"""
The client_connections gauge over real connections: each connection counts
once open while it lasts and once closed when it ends, whatever it speaks
(HTTP/1.1, TLS, HTTP/2, a WebSocket tunnel) and however it ends (closed by
the client, answered and closed by the proxy, refused, reset); the gauges
of work in progress on backends come back to zero too.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from ..support.h2_client import connect_h2
from ..support.loopback import connect_raw, listen, raw_exchange
from ..support.observed import ObservedProxy, reset
from ..support.tls_clients import ProbingClientTLS, connect_tls
from ..support.tunnels import HANDSHAKE, EchoFactory
from ..support.waiting import until

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


class ConnectionGaugeTests(ObservedProxy, TestCase):
    timeout = 20

    @inlineCallbacks
    def setUp(self):
        yield self.start_held_backend()

    @inlineCallbacks
    def answered(self, count: int):
        """
        Answer C{count} requests as they reach the backend.
        """
        for _ in range(count):
            yield until(lambda: self.held.requests)
            self.held.answer(b"ok")

    @inlineCallbacks
    def closed_to_zero(self, listener: str = "web"):
        yield until(lambda: self.gauge("client_connections", listener) <= 0)
        self.assertEqual(self.gauge("client_connections", listener), 0)
        self.assertEqual(set(self.backend_gauges().values()), {0})

    @inlineCallbacks
    def test_http11_keepalive_connections(self):
        self.start()
        clients = yield gatherResults(
            [connect_raw(self.port, GET) for _ in range(3)]
        )
        yield self.answered(3)
        yield until(lambda: all(b"\r\n\r\nok" in c.received for c in clients))
        self.assertEqual(self.gauge("client_connections"), 3)
        for client in clients:
            client.transport.loseConnection()
        yield self.closed_to_zero()

    @inlineCallbacks
    def test_connections_the_proxy_closes(self):
        self.start()
        d = raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        yield self.answered(1)
        yield d
        # A head the proxy refuses: 400, closed.
        yield raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
        yield self.closed_to_zero()

    @inlineCallbacks
    def test_reset_connections(self):
        self.start()
        idle = yield connect_raw(self.port)
        waiting = yield connect_raw(self.port, GET)
        yield until(lambda: self.held.requests)
        self.assertEqual(self.gauge("client_connections"), 2)
        reset(idle.transport)
        reset(waiting.transport)
        yield self.closed_to_zero()

    @inlineCallbacks
    def test_over_max_connections_per_ip(self):
        self.start(server="max_connections_per_ip = 1")
        first = yield connect_raw(self.port)
        yield until(lambda: self.gauge("client_connections") == 1)
        refused = yield raw_exchange(self.port, GET)
        self.assertTrue(refused.startswith(b"HTTP/1.1 429 "))
        self.assertEqual(self.gauge("client_connections"), 1)
        first.transport.loseConnection()
        yield self.closed_to_zero()

    @inlineCallbacks
    def test_http2_over_max_connections_per_ip_is_answered_429_then_goaway(self):
        self.start(server="max_connections_per_ip = 1", tls=True)
        first = yield connect_h2(self.tls_port)
        yield until(lambda: self.gauge("client_connections", "websecure") == 1)
        refused = yield connect_h2(self.tls_port)
        response = yield refused.request(b"GET", b"/")
        self.assertEqual(response.status, 429)
        self.assertIsNotNone(response.header(b"x-request-id"))
        yield refused.closed
        self.assertEqual(refused.terminated, 0)  # GOAWAY with NO_ERROR
        self.assertEqual(self.held.requests, [])
        self.assertEqual([line["status"] for line in self.logged()], [429])
        first.transport.loseConnection()
        yield self.closed_to_zero("websecure")

    @inlineCallbacks
    def test_tls_http11(self):
        self.start(tls=True)
        clients = []
        for _ in range(2):
            client = yield connect_tls(
                self.tls_port, ProbingClientTLS("localhost", alpn=[b"http/1.1"])
            )
            clients.append(client)
        pending = [client.request(GET) for client in clients]
        yield self.answered(2)
        yield gatherResults(pending)
        self.assertEqual(self.gauge("client_connections", "websecure"), 2)
        for client in clients:
            client.transport.loseConnection()
        yield self.closed_to_zero("websecure")
        self.assertEqual(
            sum(self.service.metrics.snapshot()["tls_handshakes"].values()), 2
        )

    @inlineCallbacks
    def test_tls_handshake_that_fails(self):
        self.start(tls=True)
        # Plain HTTP on the TLS port: no handshake.
        yield raw_exchange(self.tls_port, GET)
        yield self.closed_to_zero("websecure")

    @inlineCallbacks
    def test_http2_connections_closed_with_and_without_goaway(self):
        self.start(tls=True)
        for goaway in (True, False):
            client = yield connect_h2(self.tls_port)
            responses = [client.request(b"GET", b"/%d" % (n,)) for n in range(5)]
            yield self.answered(5)
            answered = yield gatherResults(responses)
            self.assertEqual([r.status for r in answered], [200] * 5)
            self.assertEqual(self.gauge("client_connections", "websecure"), 1)
            if goaway:
                # What curl does when it is done.
                client.conn.close_connection()
                client._flush()
            client.transport.loseConnection()
            yield client.closed
            yield self.closed_to_zero("websecure")

    @inlineCallbacks
    def test_http2_client_that_resets_with_streams_in_flight(self):
        self.start(tls=True)
        client = yield connect_h2(self.tls_port)
        responses = [client.request(b"GET", b"/%d" % (n,)) for n in range(3)]
        for response in responses:
            response.addErrback(lambda failure: None)
        yield until(lambda: len(self.held.requests) == 3)
        reset(client.transport.transport)
        yield self.closed_to_zero("websecure")
        lines = self.logged()
        self.assertEqual([line["status"] for line in lines], [499] * 3)
        self.assertEqual({line["protocol"] for line in lines}, {"HTTP/2"})

    @inlineCallbacks
    def test_websocket_counts_while_open(self):
        backend = EchoFactory()
        self.backend_port = yield listen(backend, self)
        self.start()
        client = yield connect_raw(self.port, HANDSHAKE)
        yield until(lambda: b"hello from backend" in client.received)
        self.assertEqual(self.gauge("client_connections"), 1)
        client.transport.loseConnection()
        yield backend.closed
        yield self.closed_to_zero()
