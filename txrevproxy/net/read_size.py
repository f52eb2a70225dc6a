"""
How much a connection reads from its socket at a time, and, on PyPy, into
what.

Twisted's TCP transports read up to 64 KiB per system call, with
C{socket.recv(64 KiB)}.  CPython allocates only what arrives.  PyPy
allocates a buffer of the full size in its nursery for every read however
few bytes come, and with two reads per proxied request that was most of
what a small request allocated: a minor collection every 64 MiB, zeroed
memory written through the caches.  Reads of 16 KiB cost PyPy 10 us less
CPU per request than 64 KiB ones (103 against 93 us, measured with C{wrk}
on PyPy 3.9), but still 32 KiB of nursery per request.  So on PyPy each
connection reads with C{recv_into} into one buffer the process shares,
and copies out only the bytes that came (L{read_into_shared_buffer}): the
small GET went from 24.0 to 20.3 us of user CPU per request, and its
collector time halved (C{benchmarks/cpu_probe.py}, A/B interleaved).
CPython gained nothing measurable from that, so it keeps Twisted's read.

The size is 64 KiB on both: large bodies move in few system calls (a 100
KiB response through the proxy on CPython went from 0.51x nginx's rate to
0.36x with 16 KiB reads).  Twisted uses the same number as the high-water
mark of the transport's write queue: a streaming producer (the backend
read, for a response going to a slow client) is paused once more than
that many bytes wait to be sent.
"""

from __future__ import annotations

import sys
from errno import EWOULDBLOCK
from types import MethodType
from typing import Optional

from twisted.internet import main, tcp

TWISTED_PRIVATE = (
    # Public, but that the connection reads this many bytes per system
    # call is a detail of its doRead that Twisted does not document.
    "twisted.internet.tcp.Connection.bufferSize",
    # What Twisted's doRead does with the bytes read.
    "twisted.internet.tcp.Connection._dataReceived",
)

#: Bytes read per system call.
READ_SIZE = 65536

#: Whether connections read into the shared buffer (see the module
#: docstring) rather than with Twisted's C{recv}.
SHARED_BUFFER_READS = sys.implementation.name == "pypy"

_buffer = bytearray(READ_SIZE)
_view = memoryview(_buffer)


def read_into_shared_buffer(connection: tcp.Connection) -> Optional[object]:
    """
    Twisted's C{doRead} for C{connection}, reading into the process's one
    buffer and passing on a copy of what came.  The copy is made before
    the protocol sees it, so no protocol ever holds the buffer itself.
    """
    try:
        count = connection.socket.recv_into(_buffer, READ_SIZE)
    except OSError as error:
        if error.args[0] == EWOULDBLOCK:
            return None
        return main.CONNECTION_LOST
    return connection._dataReceived(_view[:count].tobytes())


def set_read_size(transport) -> None:
    """
    Make the TCP connection under C{transport}, found through any
    protocols wrapping it (TLS, the PROXY protocol, the ALPN switch), read
    L{READ_SIZE} bytes at a time, on PyPy into the shared buffer.
    Transports of other kinds keep their own reads.
    """
    while transport is not None:
        if isinstance(transport, tcp.Connection):
            transport.bufferSize = READ_SIZE
            if SHARED_BUFFER_READS:
                transport.doRead = MethodType(read_into_shared_buffer, transport)
            return
        transport = getattr(transport, "transport", None)
