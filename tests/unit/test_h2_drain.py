"""
The drain of an HTTP/2 connection without a network: the two GOAWAYs, the
PING between them, and the wait for a client that never answers it.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.net.h2_drain import ANY_STREAM, DRAIN_GRACE
from txrevproxy.server.http2 import PriorKnowledgeSite

from ..support.h2_client import GracefulGoAwayStateMachine


def drained():
    """
    An idle h2c connection that was just told to drain, its client's h2
    connection, and the clock.
    """
    clock = MemoryReactorClock()
    site = PriorKnowledgeSite(Resource(), reactor=clock, settings=ServerSettings())
    protocol = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    protocol.makeConnection(transport)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.state_machine = GracefulGoAwayStateMachine()
    client.initiate_connection()
    protocol.dataReceived(client.data_to_send())
    (connection,) = site.h2_connections
    connection.drain()
    connection.drain()
    return connection, client, transport, clock


def frames(client, transport):
    events = client.receive_data(transport.value())
    transport.clear()
    return [
        ("goaway", event.last_stream_id, event.error_code)
        if isinstance(event, h2.events.ConnectionTerminated)
        else ("ping", event.ping_data)
        for event in events
        if isinstance(event, (h2.events.ConnectionTerminated, h2.events.PingReceived))
    ]


def test_second_goaway_follows_the_ack_of_the_ping():
    connection, client, transport, clock = drained()
    first = frames(client, transport)
    assert first[0] == ("goaway", ANY_STREAM, 0)
    assert first[1][0] == "ping"
    assert not transport.disconnecting
    connection.dataReceived(client.data_to_send())
    assert frames(client, transport) == [("goaway", 0, 0)]
    assert transport.disconnecting
    # The wait for the ACK is over.
    assert DRAIN_GRACE not in [call.getTime() for call in clock.getDelayedCalls()]


def test_client_that_does_not_answer_the_ping_gets_the_second_goaway_later():
    connection, client, transport, clock = drained()
    frames(client, transport)
    clock.advance(DRAIN_GRACE - 0.1)
    assert frames(client, transport) == []
    clock.advance(0.1)
    assert frames(client, transport) == [("goaway", 0, 0)]
    assert transport.disconnecting
