"""
Whether a client that sent a FIN still reads what it is sent: what the
kernel knows of a plain TCP connection, on Linux.

A FIN says the client sends nothing more.  It may have half-closed
(C{shutdown(SHUT_WR)}) and still read, or closed its socket (C{curl -m},
a browser tab closed): on the wire the two are the same until the proxy
sends something.  Then they differ: a closed socket answers the data with
a reset, which moves the connection to C{CLOSE} (C{TCP_INFO}), whereas a
reading one acknowledges it, which empties the send queue (C{SIOCOUTQ}:
the bytes not sent yet or not acknowledged yet).

What Twisted still queues for the socket (its write buffer) has not
reached the kernel, so it counts as not acknowledged either.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys
from typing import Callable, Optional

from twisted.internet import tcp

TWISTED_PRIVATE = ("twisted.internet.tcp.Connection._tempDataLen",)

#: C{TCP_CLOSE} of C{<netinet/tcp.h>}: the state a reset leaves.
_TCP_CLOSE = 7

#: C{SIOCOUTQ}, which Linux spells C{TIOCOUTQ} for terminals (0x5411).
_SIOCOUTQ = 0x5411

#: What a probe says: the client took everything sent (L{DELIVERED}), reset
#: the connection (L{GONE}), or neither yet (L{None}).
DELIVERED = True
GONE = False

Probe = Callable[[], Optional[bool]]


def delivery_probe(transport) -> Optional[Probe]:
    """
    A probe of whether C{transport}'s peer took what was written to it,
    or L{None} where this cannot be known: off Linux, on a socket that is
    not TCP, or on a transport that is not a plain TCP connection (TLS
    over a memory BIO, a test's transport).
    """
    if (
        not sys.platform.startswith("linux")
        or not hasattr(socket, "TCP_INFO")
        or not isinstance(transport, tcp.Connection)
        or getattr(transport, "TLS", True)
        or not hasattr(transport, "_tempDataLen")
    ):
        return None
    handle = transport.getHandle()
    if handle.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    fileno = handle.fileno()
    room = bytearray(4)

    def probe() -> Optional[bool]:
        if transport.dataBuffer or transport._tempDataLen:
            return None
        try:
            state = handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            if state == _TCP_CLOSE:
                return GONE
            fcntl.ioctl(fileno, _SIOCOUTQ, room)
        except OSError:
            # The socket is closed, or broken: nothing more reaches the peer.
            return GONE
        return DELIVERED if struct.unpack("i", room)[0] == 0 else None

    return probe
