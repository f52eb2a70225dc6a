"""
One listening socket per worker process, with C{SO_REUSEPORT}, so that the
kernel spreads the connections of a listener evenly over the workers.

Workers that all wait on one shared socket split its connections
unevenly: every worker wakes for each one and the first awake accepts
as many as are waiting (Twisted accepts up to a hundred per wakeup).
With keep-alive clients the split lasts: under C{wrk -c64} one worker
of two held 54 or 61 of the 64 connections while the other idled, so
two workers served fewer requests than one process.  A group of
C{SO_REUSEPORT} sockets on the same address has the kernel hash each
new connection to one socket of the group, and each worker accepts from
its own.

The sockets are opened by the supervisor, before it drops privileges, so
that a privileged port works, and Linux lets a socket join the group only
if it was opened by the same user.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, List, Tuple

from twisted.internet import tcp

TWISTED_PRIVATE = (
    # Public, but that the port makes its socket in this method, before
    # binding it, is a detail of startListening that Twisted does not
    # document.
    "twisted.internet.tcp.Port.createInternetSocket",
)


class ReusePort(tcp.Port):
    """
    A TCP port whose socket joins the C{SO_REUSEPORT} group of its address.
    """

    def createInternetSocket(self):
        s = super().createInternetSocket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return s


class _ReusePortReactor:
    """
    The reactor as an endpoint sees it: TCP listening is done with
    L{ReusePort}, and the arguments are kept to open the group's other
    sockets the same way.
    """

    def __init__(self, reactor) -> None:
        self._reactor = reactor
        self.arguments: List[Tuple[int, str]] = []

    def listenTCP(self, port: int, factory, backlog: int = 50, interface: str = ""):
        self.arguments.append((backlog, interface))
        listening = ReusePort(port, factory, backlog, interface, self._reactor)
        listening.startListening()
        return listening

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def listen_group(reactor, listen: Callable[[Any], Any], count: int) -> List[Any]:
    """
    Listen C{count} times on one address, each socket in the
    C{SO_REUSEPORT} group of the first.

    @param listen: listens once on the reactor it is given (through an
        endpoint, say) and returns the port.
    @return: C{count} ports for a TCP endpoint; for any other endpoint
        (a UNIX socket), or without C{SO_REUSEPORT}, the one port
        C{listen} made, for all to share.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        return [listen(reactor)]
    recording = _ReusePortReactor(reactor)
    first = listen(recording)
    if not recording.arguments:
        return [first]
    backlog, interface = recording.arguments[0]
    # The first port's number: the endpoint may have asked for port 0.
    number = first.getHost().port
    return [first] + [
        recording.listenTCP(number, first.factory, backlog, interface) for _ in range(count - 1)
    ]
