"""
Listening behind a load balancer that speaks the PROXY protocol (version 1
or 2): each connection first reads the header the balancer sends, and its
protocol then sees the client's addresses instead of the balancer's.

Twisted's public way in, C{proxyEndpoint}, wraps an endpoint.  A worker
process adopts a socket its parent opened instead of listening on an
endpoint, so the proxy wraps the factory, with the class C{proxyEndpoint}
uses, which lives in a private module.
"""

from __future__ import annotations

from twisted.internet.interfaces import IProtocolFactory
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory

TWISTED_PRIVATE = ("twisted.protocols.haproxy._wrapper.HAProxyWrappingFactory",)


def proxy_protocol_factory(factory: IProtocolFactory) -> IProtocolFactory:
    """
    A factory whose connections read a PROXY protocol header, then speak
    the protocol C{factory} builds, with the addresses of the header as
    their peer and host.  A connection whose header is malformed is
    closed.
    """
    return HAProxyWrappingFactory(factory)
