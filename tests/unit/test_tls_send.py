"""
Tests of L{txrevproxy.net.tls_send}: a write through TLS at once, for a
writer that gathered its writes itself, kept in order behind writes that
Twisted's TLS transport holds for the end of the reactor's turn.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from txrevproxy.net.tls_send import immediate_writer

from ..support.memory_tls import pump, records, server_and_client


def connected():
    clock = Clock()
    server, server_transport, client, client_transport = server_and_client(clock)
    pump(clock, (client_transport, server), (server_transport, client))
    server_transport.writes.clear()
    return clock, server, server_transport, client, client_transport


def test_writes_through_tls_at_once_as_one_record():
    clock, server, server_transport, client, client_transport = connected()
    immediate_writer(server)(b"response")
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
    immediate_writer(server)(b"second")
    assert server_transport.writes == []
    clock.advance(0)
    [written] = server_transport.writes
    assert records(written) == [23]
    pump(clock, (client_transport, server), (server_transport, client))
    assert b"".join(client.wrappedProtocol.received) == b"first, second"


def test_other_transports_keep_their_own_write():
    assert immediate_writer(StringTransport()) is None
