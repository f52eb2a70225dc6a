"""
Client connections without Nagle's algorithm, as nginx's C{tcp_nodelay on}.

The proxy gathers what it writes in one reactor turn into one system call,
but not every answer is written in one turn: a streamed response sends each
chunk as it comes, and an answer the proxy makes itself can go as a head
and then a body.  With Nagle's algorithm a small write that follows another
not yet acknowledged waits for that acknowledgement, which a client that
delays its ACKs (40 ms on Linux) holds back: a streamed event, or the body
of a 404, would wait for it.

The option is set on the listening socket: Linux gives it to every socket
accepted from it, so no connection pays a system call for it.  Backend
connections set it themselves (L{txrevproxy.upstream.connection}).
"""

from __future__ import annotations

import socket

TWISTED_PRIVATE = ()

_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def accept_without_delay(port) -> None:
    """
    Make the connections C{port} accepts from now on send without Nagle's
    delay, when it is a TCP port (a UNIX socket has no such option).

    @param port: a listening port, as C{IListeningPort}; Twisted's TCP
        ports keep their socket as C{socket}.
    """
    listening = getattr(port, "socket", None)
    if listening is not None and listening.family in _TCP_FAMILIES:
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
