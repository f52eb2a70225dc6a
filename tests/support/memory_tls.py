"""
TLS in memory for the unit tests: a listener's TLS protocol
(L{ServerTLSFactory}) and a Twisted TLS client, each on a
L{StringTransport}, and what moves the bytes between them.
"""

from __future__ import annotations

from typing import List, Tuple

from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from txrevproxy.net.server_tls import ServerTLSFactory
from txrevproxy.tls.acme.certificates import placeholder


@implementer(IOpenSSLServerConnectionCreator)
class Creator:
    """
    A server connection creator as the proxy's: one context, and the
    protocol as the connection's app data.
    """

    def __init__(self) -> None:
        pair = placeholder(["localhost"]).pair
        self.context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.context.use_certificate(pair.leaf)
        self.context.use_privatekey(pair.key)

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(protocol)
        return connection


@implementer(IHandshakeListener)
class Recorder(Protocol):
    """
    An application protocol that keeps what it is told.
    """

    def __init__(self) -> None:
        self.received: List[bytes] = []
        self.handshaken = False
        self.lost = None

    def handshakeCompleted(self) -> None:
        self.handshaken = True

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason) -> None:
        self.lost = reason


class WritesTransport(StringTransport):
    """
    A L{StringTransport} that also keeps each write apart.
    """

    def __init__(self) -> None:
        super().__init__()
        self.writes: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def connect(factory) -> Tuple[object, WritesTransport]:
    protocol = factory.buildProtocol(None)
    transport = WritesTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def server_and_client(clock: Clock):
    """
    A connected L{ServerTLSFactory} protocol and a Twisted TLS client, each
    on its own transport, nothing exchanged yet.
    """
    server, server_transport = connect(
        ServerTLSFactory(Creator(), Factory.forProtocol(Recorder), clock)
    )
    client, client_transport = connect(
        TLSMemoryBIOFactory(
            CertificateOptions(), True, Factory.forProtocol(Recorder), clock
        )
    )
    return server, server_transport, client, client_transport


def pump(clock: Clock, *pairs) -> None:
    """
    Move the bytes each transport was given to the other side until
    neither writes any more.
    """
    moved = True
    while moved:
        clock.advance(0)
        moved = False
        for transport, peer in pairs:
            data = transport.value()
            if data:
                transport.clear()
                peer.dataReceived(data)
                moved = True


def records(data: bytes) -> List[int]:
    """
    The content types of the TLS records in C{data}.
    """
    types = []
    while data:
        types.append(data[0])
        data = data[5 + int.from_bytes(data[3:5], "big"):]
    return types
