"""
Writing to a plain TCP connection without a detour through the reactor.

Twisted's TCP transport queues every write and has the reactor watch the
socket for room; on its next turn the reactor sends the data and stops
watching.  For a proxy, which writes a few small pieces per request on each
side, that is a queue, two changes of the epoll set and a reactor event per
write.  When nothing is queued, sending at once is what that next turn
would do anyway (asyncio's transports work so): what the socket does not
take goes to the transport's queue, which then flows as usual, with its
producer pausing and its error handling.  Measured on PyPy 3.9 with C{wrk}
on a small response: 102 to 81 us of CPU per request.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import tcp

TWISTED_PRIVATE = (
    "twisted.internet.tcp.Connection._tempDataLen",
    "twisted.internet.tcp.Connection._writeDisconnected",
    "twisted.internet.tcp.Connection._aborting",
)


def direct_writer(transport) -> Callable[[bytes], None]:
    """
    The fastest C{write} for C{transport}: for a plain TCP connection (no
    TLS started on it), one that sends straight to the socket whenever
    the transport has nothing queued; for any other transport, its own
    C{write}.
    """
    queued_write = transport.write
    if (
        not isinstance(transport, tcp.Connection)
        or getattr(transport, "TLS", True)
        # The transport's state this reads, as Twisted 25 and 26 keep it.
        or not all(hasattr(transport, n) for n in ("_tempDataLen", "_aborting"))
    ):
        return queued_write
    send = transport.socket.send

    def write(data: bytes) -> None:
        if (
            not transport.dataBuffer
            and not transport._tempDataLen
            and transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and not transport._aborting
        ):
            try:
                sent = send(data)
            except OSError:
                # No room (EAGAIN), or the connection broke: the transport
                # finds out and handles it on its own write.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        queued_write(data)

    return write
