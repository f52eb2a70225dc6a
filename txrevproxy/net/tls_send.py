"""
Writing through a TLS connection at once, for a writer that has gathered
its writes itself.

Twisted's TLS transport (L{BufferingTLSTransport}) holds every write until
the end of the reactor's turn, so that many small writes make one TLS
record: a delayed call per connection and turn (its object, its place in
the reactor's heap, its run), and the write waits for the reactor's other
events to be handled.  The HTTP/2 sending loop already writes once per
run, the whole of what C{h2} has to send (and the HTTP/1.1 channel joins
its own); L{write_now} sends that through TLS at once, as one record and
one write to the socket, unless earlier writes are still held, which it
then joins, in order.
"""

from __future__ import annotations

from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol

TWISTED_PRIVATE = (
    "twisted.protocols.tls.BufferingTLSTransport._aggregator",
    "twisted.protocols.tls._AggregateSmallWrites._buffer",
)


def writes_now(transport) -> bool:
    """
    Whether L{write_now} may write to C{transport}: Twisted's TLS transport
    that holds writes for the end of the turn, L{BufferingTLSTransport}.
    """
    return isinstance(transport, BufferingTLSTransport)


def write_now(transport, data: bytes) -> None:
    """
    Write C{data} through TLS at once to C{transport}, one for which
    L{writes_now}, unless earlier writes are still held for the end of
    the turn, which it then joins.

    A function of the transport, as L{txrevproxy.net.direct_send.send}:
    a connection that keeps it holds no closure of its own.
    """
    # An empty list: nothing held.  Twisted 26 puts a null aggregator,
    # without a list, in place of a lost connection's, and drops the
    # writes: so does this.
    if getattr(transport._aggregator, "_buffer", True):
        transport.write(data)
    else:
        TLSMemoryBIOProtocol.write(transport, data)
