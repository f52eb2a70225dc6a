"""
The drain of an HTTP/2 connection without a network: the two GOAWAYs, the
PING between them, and the wait for a client that never answers it.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.net.h2_drain import ANY_STREAM, DRAIN_GRACE
from txrevproxy.server.http2 import PriorKnowledgeSite

from ..support.h2_client import GracefulGoAwayStateMachine


class Ok(Resource):
    isLeaf = True

    def render(self, request):
        return b"ok"


def drained():
    """
    An idle h2c connection that was just told to drain, its client's h2
    connection, and the clock.
    """
    clock = MemoryReactorClock()
    site = PriorKnowledgeSite(
        Ok(), reactor=clock, settings=ServerSettings()
    )
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


HEAD = [(":method", "GET"), (":scheme", "http"), (":authority", "h"), (":path", "/")]


def test_stream_opened_between_the_goaways_is_kept_and_one_after_refused():
    connection, client, transport, clock = drained()
    frames(client, transport)
    ack = client.data_to_send()
    client.send_headers(1, HEAD, end_stream=True)
    connection.dataReceived(client.data_to_send())
    connection.dataReceived(ack)
    events = client.receive_data(transport.value())
    transport.clear()
    (goaway,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.last_stream_id == 1
    assert not [e for e in events if isinstance(e, h2.events.StreamReset)]
    (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert (response.stream_id, response.headers[0]) == (1, (b":status", b"200"))

    client.send_headers(3, HEAD, end_stream=True)
    connection.dataReceived(client.data_to_send())
    events = client.receive_data(transport.value())
    (reset,) = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert (reset.stream_id, reset.error_code) == (3, ErrorCodes.REFUSED_STREAM)
    assert 3 not in connection.streams


def test_client_goaway_with_streams_open_lets_them_go():
    connection, client, transport, clock = drained()
    frames(client, transport)
    client.send_headers(1, HEAD)
    connection.dataReceived(client.data_to_send())
    assert 1 in connection.streams
    client.close_connection()
    connection.dataReceived(client.data_to_send())
    assert connection.streams == {}
    assert transport.disconnecting


def test_proxy_connection_builds_one_h2_connection_with_its_encoder_and_checks(
    monkeypatch,
):
    from txrevproxy.http.h2_inbound import malformed_fields
    from txrevproxy.http.hpack_static import StaticTableEncoder
    from txrevproxy.net import h2_drain
    from txrevproxy.server.http2 import ProxyH2Connection

    built = []
    init = h2.connection.H2Connection.__init__

    def counted(self, config=None):
        built.append(type(self))
        init(self, config)

    monkeypatch.setattr(h2.connection.H2Connection, "__init__", counted)
    connection = ProxyH2Connection(MemoryReactorClock())
    # Twisted's own, then the one that can drain in its place.
    assert built == [h2.connection.H2Connection, h2_drain._GoingAwayH2]
    assert isinstance(connection.conn.encoder, StaticTableEncoder)
    assert connection.conn.check_fields is malformed_fields
    assert not connection.conn.config.client_side
