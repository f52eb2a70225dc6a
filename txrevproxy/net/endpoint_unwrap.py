"""
Taking the endpoint's wrapper out of a connected protocol's path.

Twisted's client endpoints connect a C{_WrappingProtocol} to the transport,
which makes the protocol the factory built and passes it every event: a
call more for each read, for the whole life of the connection, though the
wrapper has nothing left to do once it has reported the connection.  A
pooled backend connection carries thousands of requests, each with at
least one read.
"""

from __future__ import annotations

from twisted.internet import endpoints

TWISTED_PRIVATE = (
    "twisted.internet.endpoints._WrappingProtocol",
    "twisted.internet.endpoints._WrappingProtocol._wrappedProtocol",
)


def deliver_directly(protocol) -> None:
    """
    Have C{protocol}'s transport deliver its events to C{protocol} itself
    rather than through the endpoint's wrapper; called from
    C{protocol.connectionMade}.

    Only the wrapper that forwards to C{protocol}, and on a transport that
    calls its C{protocol} attribute (a TCP connection), is skipped: the
    wrapper then only forwards (C{dataReceived}, C{connectionLost}, and the
    half-close and handshake events, which it provides only when
    C{protocol} does), and the transport reads that attribute anew for
    each event.  Any other protocol between them (a TLS layer, the PROXY
    protocol's header writer) stays.
    """
    transport = protocol.transport
    wrapper = getattr(transport, "protocol", None)
    if (
        type(wrapper) is endpoints._WrappingProtocol
        and wrapper._wrappedProtocol is protocol
    ):
        transport.protocol = protocol
