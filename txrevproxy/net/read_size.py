"""
How much a connection reads from its socket at a time.

Twisted's TCP transports read up to 64 KiB per system call.  PyPy allocates
a buffer of that size for every read however few bytes come, and with two
reads per proxied request that alone cost a tenth of the proxy's time on a
small response (measured with C{wrk} on PyPy 3.9: 103 us of CPU per request
with 64 KiB reads, 93 us with 16 KiB or 4 KiB ones).  16 KiB keeps large
bodies moving in few system calls, and is the largest TLS record.

CPython allocates only what arrives, so there a larger read costs nothing
and saves the per-read work of a large body: it keeps Twisted's 64 KiB (a
100 KiB response through the proxy went from 0.51x nginx's rate to 0.36x
with 16 KiB reads).

Twisted uses the same number as the high-water mark of the transport's
write queue: a streaming producer (the backend read, for a response going
to a slow client) is paused once more than that many bytes wait to be
sent.
"""

from __future__ import annotations

import sys

from twisted.internet import tcp

TWISTED_PRIVATE = (
    # Public, but that the connection reads this many bytes per system
    # call is a detail of its doRead that Twisted does not document.
    "twisted.internet.tcp.Connection.bufferSize",
)

#: Bytes read per system call.
READ_SIZE = 16384 if sys.implementation.name == "pypy" else 65536


def set_read_size(transport, size: int = READ_SIZE) -> None:
    """
    Make the TCP connection under C{transport}, found through any
    protocols wrapping it (TLS, the PROXY protocol, the ALPN switch), read
    up to C{size} bytes at a time.  Transports of other kinds keep their
    own.
    """
    while transport is not None:
        if isinstance(transport, tcp.Connection):
            transport.bufferSize = size
            return
        transport = getattr(transport, "transport", None)
