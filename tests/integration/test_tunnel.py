"""
WebSocket and other Upgrade requests through the proxy: the 101 is relayed,
then bytes flow both ways until either side closes or the pipe idles out.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from txrevproxy.http.headers import requested_upgrade

from ..support.loopback import connect_raw, listen, proxy_config, start_proxy
from ..support.tunnels import HANDSHAKE, EchoFactory
from ..support.waiting import until


def test_requested_upgrade_needs_get_http11_and_connection_upgrade():
    headers = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    assert requested_upgrade(b"GET", b"HTTP/1.1", headers) == b"websocket"
    assert requested_upgrade(b"POST", b"HTTP/1.1", headers) is None
    assert requested_upgrade(b"GET", b"HTTP/1.0", headers) is None
    assert requested_upgrade(b"GET", b"HTTP/1.1", headers[:1]) is None


class TunnelTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def test_websocket_handshake_and_bytes_both_ways(self):
        backend = EchoFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        client = yield connect_raw(port, HANDSHAKE)
        yield until(lambda: b"hello from backend" in client.received)
        head, _, rest = client.received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 101 Switching Protocols")
        self.assertIn(b"Upgrade: websocket", lines)
        self.assertIn(b"Connection: Upgrade", lines)
        self.assertEqual(rest, b"hello from backend")
        sent = backend.heads[0].lower()
        self.assertIn(b"\r\nupgrade: websocket\r\n", sent)
        self.assertIn(b"\r\nconnection: upgrade\r\n", sent)
        self.assertIn(b"\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n", sent)

        client.received = b""
        client.transport.write(b"frame-one")
        yield until(lambda: client.received == b"FRAME-ONE")
        client.transport.loseConnection()
        yield backend.closed

    @inlineCallbacks
    def test_backend_closing_closes_the_client(self):
        class UpgradeThenClose(Protocol):
            def dataReceived(self, data):
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\nbye"
                )
                self.transport.loseConnection()

        backend_port = yield listen(Factory.forProtocol(UpgradeThenClose), self)
        port = start_proxy(proxy_config([backend_port]), self)
        client = yield connect_raw(port, HANDSHAKE)
        received = yield client.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 101 "))
        self.assertTrue(received.endswith(b"\r\n\r\nbye"))

    @inlineCallbacks
    def test_idle_tunnel_is_closed(self):
        backend = EchoFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port], tunnel_idle_timeout=0.2), self)
        client = yield connect_raw(port, HANDSHAKE)
        yield client.closed
        yield backend.closed
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101 "))

    @inlineCallbacks
    def test_unrequested_101_is_a_bad_gateway(self):
        backend = EchoFactory()
        backend_port = yield listen(backend, self)
        port = start_proxy(proxy_config([backend_port]), self)
        client = yield connect_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
        yield until(lambda: b"\r\n\r\n" in client.received)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 502 "))
        self.assertNotIn(b"upgrade", backend.heads[0].lower().split(b"\r\n\r\n")[0].split(b"\r\n", 1)[1])
        client.transport.loseConnection()
