"""
Tests of L{txrevproxy.net.tls_send}: a write through TLS at once, for a
writer that gathered its writes itself, kept in order behind writes that
Twisted's TLS transport holds for the end of the reactor's turn.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory

from txrevproxy.config.model import ServerSettings
from txrevproxy.net.server_tls import ServerTLSFactory
from txrevproxy.net.tls_send import write_now, writes_now
from txrevproxy.server.site import ProxySite

from ..support import memory_tls
from ..support.memory_tls import Creator, connect, pump, records, server_and_client
from ..support.resources import Recorder


def connected():
    clock = Clock()
    server, server_transport, client, client_transport = server_and_client(clock)
    pump(clock, (client_transport, server), (server_transport, client))
    server_transport.writes.clear()
    return clock, server, server_transport, client, client_transport


def test_writes_through_tls_at_once_as_one_record():
    clock, server, server_transport, client, client_transport = connected()
    assert writes_now(server)
    write_now(server, b"response")
    [written] = server_transport.writes
    assert records(written) == [23]
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(client.wrappedProtocol.received) == b"response"


def test_joins_the_writes_held_for_the_end_of_the_turn_in_order():
    """
    Behind a write that Twisted holds for the end of the turn, the bytes
    wait too, and both leave in one record, in the order written.
    """
    clock, server, server_transport, client, client_transport = connected()
    server.write(b"first, ")
    write_now(server, b"second")
    assert server_transport.writes == []
    clock.advance(0)
    [written] = server_transport.writes
    assert records(written) == [23]
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(client.wrappedProtocol.received) == b"first, second"


def test_other_transports_keep_their_own_write():
    assert not writes_now(StringTransport())


class TCPTransport(memory_tls.WritesTransport):
    """
    A transport with the TCP option the HTTP/1.1 channel sets.
    """

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


def test_the_http1_channel_writes_through_tls_at_once():
    """
    The HTTP/1.1 channel joins its writes itself, so over TLS what it
    writes leaves at once, as one record, without waiting for the end of
    the reactor's turn (as on plain TCP, where it goes to the socket).
    """
    clock = MemoryReactorClock()
    site = ProxySite(Recorder(), reactor=clock, settings=ServerSettings())
    site.startFactory()
    server = ServerTLSFactory(Creator(), site, clock).buildProtocol(None)
    server_transport = TCPTransport()
    server.makeConnection(server_transport)
    client, client_transport = connect(
        TLSMemoryBIOFactory(
            CertificateOptions(), True, Factory.forProtocol(memory_tls.Recorder), clock
        )
    )
    pump(clock, (client_transport, server), (server_transport, client))
    server_transport.writes.clear()
    server.wrappedProtocol.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    [written] = server_transport.writes
    assert records(written) == [23]
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(client.wrappedProtocol.received) == b"HTTP/1.1 204 No Content\r\n\r\n"
