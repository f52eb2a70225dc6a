"""
Tests for L{txrevproxy.net.endpoint_unwrap}: a connection made through a
client endpoint hears its transport's events directly, without the
endpoint's wrapper in between.
"""

from __future__ import annotations

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport

from txrevproxy.net.endpoint_unwrap import deliver_directly


class Unwrapping(Protocol):
    def connectionMade(self) -> None:
        deliver_directly(self)


def connect_through_endpoint(protocol: Protocol):
    """
    Connect C{protocol} as a client endpoint does: the endpoint's wrapper
    is the transport's protocol, and makes the connection.

    @return: the transport, and the results of the endpoint's Deferred.
    """
    reactor = MemoryReactorClock()
    connected: list = []
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", 8080)
    endpoint.connect(Factory.forProtocol(lambda: protocol)).addCallback(connected.append)
    wrapper = reactor.tcpClients[0][2].buildProtocol(None)
    transport = StringTransport()
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    return transport, connected


def test_the_endpoints_wrapper_leaves_the_transports_path():
    protocol = Unwrapping()
    transport, connected = connect_through_endpoint(protocol)
    assert transport.protocol is protocol
    # The endpoint still reports the connection.
    assert connected == [protocol]


def test_a_wrapper_of_another_protocol_stays():
    protocol = Unwrapping()
    transport, _ = connect_through_endpoint(Protocol())
    wrapper = transport.protocol
    protocol.makeConnection(transport)
    assert transport.protocol is wrapper


def test_a_transport_without_a_wrapper_is_left_alone():
    protocol = Unwrapping()
    transport = StringTransport()
    protocol.makeConnection(transport)
    assert not hasattr(transport, "protocol")
