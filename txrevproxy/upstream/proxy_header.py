"""
Connections to a backend that start with a PROXY protocol header
(C{proxy_protocol} of an upstream): the header goes on the TCP connection
before anything else, before the TLS handshake of an C{https} backend.

A header names one client, so a connection that carried one serves that
client only: the pool keeps it for requests whose header is the same (see
L{txrevproxy.upstream.pool.ConnectionPool.take_idle}).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from ..net.sized_reads import SizedReadsTLSEndpoint


class HeaderFirstProtocol(Protocol):
    """
    Writes the header on a new connection, then makes the connection the
    wrapped protocol's: its transport is the connection itself (its writes
    go straight to the socket), and only what the connection receives, and
    its end, pass through here.
    """

    def __init__(self, header: bytes, wrapped: Protocol) -> None:
        self.header = header
        self.wrapped = wrapped

    def makeConnection(self, transport) -> None:
        transport.write(self.header)
        self.wrapped.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason) -> None:
        self.wrapped.connectionLost(reason)


class _HeaderFirstFactory(Factory):
    noisy = False

    def __init__(self, header: bytes, factory: IProtocolFactory) -> None:
        self._header = header
        self._factory = factory

    def buildProtocol(self, addr):
        wrapped = self._factory.buildProtocol(addr)
        return None if wrapped is None else HeaderFirstProtocol(self._header, wrapped)


@implementer(IStreamClientEndpoint)
class HeaderFirstEndpoint:
    """
    Connections of C{endpoint} with C{header} written first; C{connect}
    fires with the protocol C{protocolFactory} made, as any endpoint's.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, header: bytes) -> None:
        self.endpoint = endpoint
        self.header = header

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        d = self.endpoint.connect(_HeaderFirstFactory(self.header, protocolFactory))
        return d.addCallback(lambda first: first.wrapped)


def with_proxy_header(endpoint: IStreamClientEndpoint, header: bytes) -> IStreamClientEndpoint:
    """
    C{endpoint} (a backend's, from L{txrevproxy.upstream.pool.backend_endpoint})
    with C{header} written first on each connection: under TLS for an
    C{https} backend, since the backend reads the header before its
    handshake.  Only the small endpoint objects are made again; the TLS
    client settings are the backend's, made once.
    """
    if isinstance(endpoint, SizedReadsTLSEndpoint):
        return SizedReadsTLSEndpoint(
            endpoint.creator, HeaderFirstEndpoint(endpoint.endpoint, header)
        )
    return HeaderFirstEndpoint(endpoint, header)
