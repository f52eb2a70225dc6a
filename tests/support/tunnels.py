"""
A TLS-looking handshake and an echo server for tunnel tests.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class EchoAfterUpgrade(Protocol):
    """
    A backend that accepts the upgrade, then echoes every byte upper-cased.
    """

    def __init__(self):
        self.head = b""
        self.upgraded = False

    def dataReceived(self, data):
        if self.upgraded:
            self.transport.write(data.upper())
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            self.factory.heads.append(self.head)
            self.upgraded = True
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                b"hello from backend"
            )

    def connectionLost(self, reason=None):
        self.factory.closed.callback(None)


class EchoFactory(Factory):
    protocol = EchoAfterUpgrade

    def __init__(self):
        self.heads = []
        self.closed = Deferred()
