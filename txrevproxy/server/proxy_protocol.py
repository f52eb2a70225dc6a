"""
Listening behind a load balancer that speaks the PROXY protocol (version 1
or 2): each connection first reads the header the balancer sends, and the
protocol behind it (the HTTP channel, or TLS and then the channel) sees the
client's addresses as its peer and host.

The wrapper sits on the TCP connection itself, below TLS: a balancer sends
the header in the clear before the client's TLS handshake.  It uses only Twisted's public
L{ProtocolWrapper}; the header is read by
L{txrevproxy.http.proxy_protocol}.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from ..http.proxy_protocol import (
    Address,
    MalformedProxyHeader,
    ProxyHeader,
    read_proxy_header,
)


def _twisted_address(address: Optional[Address]) -> Optional[IAddress]:
    """
    A header's address as Twisted's transports give theirs.
    """
    if address is None:
        return None
    host, port = address
    kind = IPv6Address if ":" in host else IPv4Address
    return kind("TCP", host, port)


class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Reads a PROXY protocol header, then hands every byte to the wrapped
    protocol, whose transport's C{getPeer} and C{getHost} answer the
    header's addresses (the connection's own when the header names none).

    A malformed header, none within the factory's C{timeout}, or an IP
    peer the factory does not admit, closes the connection: nothing
    reaches the wrapped protocol but its C{connectionMade} and
    C{connectionLost}.  (A Unix socket's peer is always admitted: who may
    connect is up to the socket file's permissions.)
    """

    _headerBytes = b""
    _header: Optional[ProxyHeader] = None
    _peer: Optional[IAddress] = None
    _host: Optional[IAddress] = None
    _timer = None
    _refused = False

    def makeConnection(self, transport) -> None:
        factory = self.factory
        admits = factory.admits
        host = getattr(transport.getPeer(), "host", None)
        if admits is not None and host is not None and not admits(host):
            # Not a balancer we trust to name clients: nothing it sends is
            # read, and the wrapped protocol only sees the connection end.
            self._refused = True
            super().makeConnection(transport)
            self.transport.loseConnection()
            return
        self._timer = factory.clock.callLater(factory.timeout, self._timedOut)
        super().makeConnection(transport)

    def _timedOut(self) -> None:
        self._timer = None
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        data = self._headerBytes + data
        try:
            read = read_proxy_header(data)
        except MalformedProxyHeader:
            self._headerBytes = b""
            self._stopTimer()
            self.transport.loseConnection()
            return
        if read is None:
            self._headerBytes = data
            return
        self._stopTimer()
        self._headerBytes = b""
        self._header, size = read
        self._peer = _twisted_address(self._header.source)
        self._host = _twisted_address(self._header.destination)
        rest = data[size:]
        if rest:
            self.wrappedProtocol.dataReceived(rest)

    def _stopTimer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connectionLost(self, reason) -> None:
        self._stopTimer()
        super().connectionLost(reason)

    def getPeer(self) -> IAddress:
        return self._peer or self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self._host or self.transport.getHost()


class ProxyHeaderFactory(WrappingFactory):
    """
    Wraps a listener's factory: its connections start with a PROXY
    protocol header (see L{ProxyHeaderProtocol}).

    @ivar clock: the reactor's clock, for the header's timeout.
    @ivar timeout: seconds a connection has to send its whole header.
    @ivar admits: whether a peer's IP address may send a header, such as
        L{ProxySite.is_trusted <txrevproxy.server.site.ProxySite.is_trusted>};
        a connection from another one is closed unread.  L{None}: any peer
        may.
    """

    protocol = ProxyHeaderProtocol
    noisy = False

    def __init__(
        self,
        factory: IProtocolFactory,
        clock,
        timeout: float,
        admits: Optional[Callable[[str], bool]] = None,
    ) -> None:
        super().__init__(factory)
        self.clock = clock
        self.timeout = timeout
        self.admits = admits

    def logPrefix(self) -> str:
        prefix = getattr(self.wrappedFactory, "logPrefix", None)
        return "%s (PROXY)" % (prefix() if prefix else type(self.wrappedFactory).__name__,)
