"""
Tests of L{txrevproxy.net.server_tls}, a listener's TLS protocol: it
starts as Twisted's own does, less the work a server does not need, and
(with L{txrevproxy.net.sized_reads}) sends its last bytes and the
close_notify alert in one write.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import providedBy

from ..support.memory_tls import (
    Creator,
    Recorder,
    connect,
    pump,
    records,
    server_and_client,
)
from txrevproxy.net import sized_reads
from txrevproxy.net.server_tls import ServerTLSFactory
from txrevproxy.net.sized_reads import SizedReadsTLSFactory


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


class FailingIO:
    """
    The proxy's OpenSSL calls, but an encryption that fails as OpenSSL
    does on a connection in a failed state.
    """

    def __init__(self, io) -> None:
        self._io = io

    def __getattr__(self, name: str):
        return getattr(self._io, name)

    def encrypt(self, connection, data: bytes) -> int:
        raise SSL.Error([("SSL routines", "", "protocol is shutdown")])


def test_a_write_openssl_refuses_loses_the_connection(monkeypatch):
    """
    A write that OpenSSL refuses ends the connection, with OpenSSL's
    error as the reason the application is given once the socket has
    closed; nothing is sent.
    """
    clock = Clock()
    server, server_transport, client, client_transport = server_and_client(clock)
    pump(clock, (client_transport, server), (server_transport, client))
    server_transport.writes.clear()
    monkeypatch.setattr(sized_reads, "OPENSSL_IO", FailingIO(sized_reads.OPENSSL_IO))
    server.write(b"response")
    clock.advance(0)
    assert server_transport.writes == []
    assert server_transport.disconnecting
    application = server.wrappedProtocol
    # The socket then closes, as the transport reports.
    server.connectionLost(Failure(ConnectionDone()))
    assert application.lost.check(SSL.Error)
