"""
A proxy over an in-memory reactor whose backends the test answers by
hand, and the bytes a test sends and reads back.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from txrevproxy.config.model import ServerSettings
from txrevproxy.forward.resource import ProxyTarget, ReverseProxyResource
from txrevproxy.server.site import ProxySite

from ..support.balancing import make_balancer, server

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Proxy:
    """
    A proxy site in front of an upstream of C{count} in-memory backends,
    balanced round robin (backend 0 first).
    """

    def __init__(self, count: int = 3, servers=None, **upstream_options) -> None:
        self.clock = MemoryReactorClock()
        self.balancer = make_balancer(
            servers or [server(n) for n in range(1, count + 1)],
            clock=self.clock,
            **upstream_options,
        )
        self.endpoints = [backend.pool.endpoint for backend in self.balancer.backends]
        target = ProxyTarget(self.balancer, self.clock, 60.0, True)
        self.site = ProxySite(
            ReverseProxyResource(target), reactor=self.clock, settings=ServerSettings()
        )

    def client(self, data: bytes = b""):
        """
        A new client connection that sent C{data}: its channel and transport.
        """
        channel = self.site.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1))
        channel.makeConnection(transport)
        if data:
            channel.dataReceived(data)
        return channel, transport

    def connection(self, index: int):
        """
        The latest connection to backend C{index}.
        """
        return self.endpoints[index].connections[-1]


GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def status(transport) -> bytes:
    return transport.value().split(b"\r\n", 1)[0]
