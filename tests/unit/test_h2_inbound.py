"""
The checks of RFC 9113 on the header blocks an HTTP/2 client sends, made
by the proxy in one pass rather than by C{h2}, and the connection error
that follows a malformed block.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.http.h2_inbound import malformed_fields
from txrevproxy.net.h2 import TrailingConnection
from txrevproxy.server.http2 import PriorKnowledgeSite

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/"),
]


@pytest.mark.parametrize(
    "fields",
    [
        REQUEST,
        REQUEST + [(b"accept", b""), (b"te", b"Trailers"), (b"x_a", b"1 2")],
        REQUEST + [(b"host", b"example.com")],
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"a")],
        [(b":method", b"CONNECT"), (b":protocol", b"websocket")] + REQUEST[1:],
    ],
)
def test_well_formed_request_heads_pass(fields):
    assert malformed_fields(fields) is None


@pytest.mark.parametrize(
    "fields",
    [
        REQUEST + [(b"", b"x")],
        REQUEST + [(b"X-Upper", b"1")],
        REQUEST + [(b"x a", b"1")],
        REQUEST + [(b"x\x7fa", b"1")],
        REQUEST + [(b"x:a", b"1")],
        REQUEST + [(b"x-a", b"a\x00b")],
        REQUEST + [(b"x-a", b"a\rb")],
        REQUEST + [(b"x-a", b"a\nb")],
        REQUEST + [(b"x-a", b" a")],
        REQUEST + [(b"x-a", b"a\t")],
        REQUEST + [(b"connection", b"close")],
        REQUEST + [(b"keep-alive", b"5")],
        REQUEST + [(b"proxy-connection", b"close")],
        REQUEST + [(b"transfer-encoding", b"chunked")],
        REQUEST + [(b"upgrade", b"h2c")],
        REQUEST + [(b"te", b"gzip")],
        REQUEST[:1] + [(b"x-a", b"1")] + REQUEST[1:],
        REQUEST + [(b":method", b"GET")],
        REQUEST + [(b":status", b"200")],
        REQUEST + [(b":custom", b"1")],
        REQUEST + [(b":protocol", b"websocket")],
        [field for field in REQUEST if field[0] != b":path"],
        [field for field in REQUEST if field[0] != b":scheme"],
        [field for field in REQUEST if field[0] != b":method"],
        [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
        [field if field[0] != b":path" else (b":path", b"") for field in REQUEST],
        [field for field in REQUEST if field[0] != b":authority"],
        REQUEST + [(b"host", b"other.example")],
        REQUEST + [(b"host", b"example.com"), (b"host", b"example.com")],
    ],
)
def test_malformed_request_heads_are_named(fields):
    assert malformed_fields(fields)


def test_trailers_have_regular_fields_only():
    assert malformed_fields([(b"x-checksum", b"1"), (b"host", b"a")], trailers=True) is None
    assert malformed_fields([(b":path", b"/")], trailers=True)
    assert malformed_fields([(b"x-a", b"a\nb")], trailers=True)
    assert malformed_fields([(b"connection", b"close")], trailers=True)


class Hello(Resource):
    isLeaf = True

    def render(self, request):
        return b"hello"


def connected():
    """
    An h2c connection to the proxy's HTTP/2 server, with a client that
    sends whatever header block it is given.
    """
    clock = MemoryReactorClock()
    site = PriorKnowledgeSite(Hello(), reactor=clock, settings=ServerSettings())
    protocol = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    protocol.makeConnection(transport)
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    )
    client.initiate_connection()
    protocol.dataReceived(client.data_to_send())
    client.receive_data(transport.value())
    transport.clear()
    return protocol, client, transport, clock


def terminated_by_protocol_error(protocol, client, transport, clock):
    """
    Send what the client has queued and check that the proxy ended the
    connection with GOAWAY(PROTOCOL_ERROR) and closes it; return the
    client's events.
    """
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    events = client.receive_data(transport.value())
    (ended,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert ended.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert transport.disconnecting
    return events


@pytest.mark.parametrize(
    "fields",
    [
        [field for field in REQUEST if field[0] != b":scheme"],
        REQUEST + [(b"te", b"gzip")],
        REQUEST[:1] + [(b"x-a", b"1")] + REQUEST[1:],
    ],
)
def test_a_malformed_head_ends_the_connection_with_protocol_error(fields):
    protocol, client, transport, clock = connected()
    client.send_headers(1, fields, end_stream=True)
    events = terminated_by_protocol_error(protocol, client, transport, clock)
    assert not [e for e in events if isinstance(e, h2.events.ResponseReceived)]


def test_malformed_trailers_end_the_connection_with_protocol_error():
    protocol, client, transport, clock = connected()
    client.send_headers(1, [(b":method", b"POST")] + REQUEST[1:])
    client.send_data(1, b"x")
    client.send_headers(1, [(b":path", b"/")], end_stream=True)
    terminated_by_protocol_error(protocol, client, transport, clock)


def test_a_well_formed_head_is_answered():
    protocol, client, transport, clock = connected()
    client.send_headers(1, REQUEST, end_stream=True)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    events = client.receive_data(transport.value())
    (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert dict(response.headers)[b":status"] == b"200"


def test_without_a_check_of_its_own_h2_validates_what_it_receives():
    config = h2.config.H2Configuration(client_side=False)
    assert TrailingConnection(config).config.validate_inbound_headers
    checked = TrailingConnection(config, check_fields=malformed_fields)
    assert not checked.config.validate_inbound_headers
    assert config.validate_inbound_headers
