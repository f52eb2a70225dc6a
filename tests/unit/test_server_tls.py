"""
Tests of L{txrevproxy.net.server_tls}, a listener's TLS protocol: it
starts as Twisted's own does, less the work a server does not need, and
(with L{txrevproxy.net.sized_reads}) sends its last bytes and the
close_notify alert in one write.
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
from zope.interface import implementer, providedBy

from txrevproxy.net.server_tls import ServerTLSFactory
from txrevproxy.net.sized_reads import SizedReadsTLSFactory
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


def test_server_protocol_starts_as_twisteds_does():
    """
    Once connected, the protocol has the attributes Twisted's
    C{makeConnection} gives it, provides the transport's interfaces, is
    known to its factory and connects the protocol it wraps; its OpenSSL
    connection waits for a client's hello, with the protocol as its app
    data.
    """
    creator = Creator()
    ours, ours_transport = connect(
        ServerTLSFactory(creator, Factory.forProtocol(Recorder), Clock())
    )
    twisteds, _ = connect(
        SizedReadsTLSFactory(creator, False, Factory.forProtocol(Recorder), Clock())
    )
    assert sorted(vars(ours)) == sorted(vars(twisteds))
    assert list(providedBy(ours)) == list(providedBy(twisteds))
    assert list(providedBy(ours_transport))
    assert ours in ours.factory.protocols
    assert ours.wrappedProtocol.transport is ours
    assert ours.getHandle().get_app_data() is ours
    assert ours_transport.value() == b""


def test_handshake_starts_with_the_clients_hello():
    """
    Nothing is sent before the client's hello; then the handshake runs and
    application data passes both ways.
    """
    clock = Clock()
    server, server_transport, client, client_transport = server_and_client(clock)
    assert server_transport.value() == b""
    pump(clock, (client_transport, server), (server_transport, client))
    assert server.wrappedProtocol.handshaken
    client.write(b"ping")
    server.write(b"pong")
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(server.wrappedProtocol.received) == b"ping"
    assert b"".join(client.wrappedProtocol.received) == b"pong"


def test_last_writes_and_close_notify_leave_in_one_write():
    """
    What the application wrote just before closing and the close_notify
    alert reach the transport in one write, of two records; the client
    reads the bytes, then the end of the TLS connection.
    """
    clock = Clock()
    server, server_transport, client, client_transport = server_and_client(clock)
    pump(clock, (client_transport, server), (server_transport, client))
    server_transport.writes.clear()
    server.write(b"response")
    server.loseConnection()
    [written] = server_transport.writes
    # TLS 1.3 encrypts the alert too: two application data records.
    assert records(written) == [23, 23]
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(client.wrappedProtocol.received) == b"response"
    assert client_transport.disconnecting
    assert server_transport.disconnecting


def test_connection_closed_before_its_handshake_sends_nothing():
    """
    A connection closed before the client's hello is aborted, as Twisted
    aborts it: nothing is written.
    """
    clock = Clock()
    server, server_transport, _, _ = server_and_client(clock)
    server.loseConnection()
    assert server_transport.value() == b""
    assert server_transport.disconnecting
