"""
The TLS protocol of the proxy's connections, client and backend sides:
Twisted's, reading out of OpenSSL in buffers sized to what is there.

Twisted's L{TLSMemoryBIOProtocol} asks pyOpenSSL for up to 32 KiB at every
read of decrypted bytes and of encrypted bytes to send, including the last
read of each batch, which only finds out there is nothing more.  pyOpenSSL
allocates a buffer of the size asked for on every call.  On CPython that is
a cheap C{malloc}; on PyPy every such buffer counts as memory pressure
towards the next major collection, and with four 32 KiB buffers per small
request the garbage collector took over half of the proxy's time (measured
on PyPy 3.9 with C{wrk} on a small HTTPS response: 200 us of GC per
request, against 30 us with reads sized as below).
"""

from __future__ import annotations

from typing import List

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from .direct_send import direct_writer

TWISTED_PRIVATE = (
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushReceiveBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushSendBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._lostTLSConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._aborted",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._shutdownTLS",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsShutdownFinished",
)

#: The smallest read asked for: small requests and responses fit in one.
MIN_READ = 512
#: The largest: a TLS record carries at most 16 KiB of data, and with its
#: header and the cipher's overhead at most 16 KiB + 256 bytes on the wire.
MAX_READ = 16384 + 256


def read_size(expected: int) -> int:
    """
    The size to read when about C{expected} bytes are there.
    """
    return min(max(expected, MIN_READ), MAX_READ)


class SizedReadsTLSProtocol(BufferingTLSTransport):
    """
    L{BufferingTLSTransport} (Twisted's TLS protocol, with its coalescing
    of small writes) whose reads out of OpenSSL are sized to what they can
    find: decrypted data is never larger than the encrypted bytes just
    received, and the encrypted bytes waiting to be sent are about as many
    as the last time.  A read that fills its buffer is followed by another,
    so nothing is left behind however the estimate falls.  What it sends
    goes straight to the socket when it can (see
    L{txrevproxy.net.direct_send}), and what a close sends (the last
    writes and the close_notify alert) goes in one write.

    @ivar _received: how many encrypted bytes the last C{dataReceived}
        brought, or L{None} outside of it.
    @ivar _sendEstimate: how many encrypted bytes the last flush sent.
    """

    _received = None
    _sendEstimate = MIN_READ

    def makeConnection(self, transport) -> None:
        self._send = direct_writer(transport)
        super().makeConnection(transport)

    def loseConnection(self) -> None:
        """
        Send the writes still aggregated and the close_notify alert in one
        write to the socket, where Twisted sends them in two: one system
        call less for every connection closed after a response (a client
        asking C{Connection: close}).
        """
        send = self._send
        held: List[bytes] = []
        self._send = held.append
        try:
            super().loseConnection()
        finally:
            self._send = send
        if held and not self._aborted:
            # An aborted connection (closed before its handshake was done)
            # drops what it had to send, as its transport does.
            send(b"".join(held))

    def dataReceived(self, data: bytes) -> None:
        self._received = len(data)
        try:
            super().dataReceived(data)
        finally:
            self._received = None

    def _flushReceiveBIO(self) -> None:
        # Twisted's loop, with sized reads.
        connection = self._tlsConnection
        left = MAX_READ if self._received is None else self._received
        while not self._lostTLSConnection:
            size = read_size(left)
            try:
                data = connection.recv(size)
            except WantReadError:
                break
            except ZeroReturnError:
                # The peer closed TLS; no more data comes on this connection.
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                # A TLS failure (bad record, renegotiation refused...).
                self._tlsShutdownFinished(Failure())
            else:
                left = MAX_READ if len(data) == size else left - len(data)
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:
        connection = self._tlsConnection
        size = read_size(self._sendEstimate)
        sent = 0
        while True:
            try:
                data = connection.bio_read(size)
            except WantReadError:
                # Nothing (more) to send.
                break
            sent += len(data)
            self._send(data)
            if len(data) < size:
                break
            size = MAX_READ
        if sent:
            self._sendEstimate = sent


class SizedReadsTLSFactory(TLSMemoryBIOFactory):
    """
    Twisted's TLS wrapping factory, making L{SizedReadsTLSProtocol}s.
    """

    protocol = SizedReadsTLSProtocol


@implementer(IStreamClientEndpoint)
class SizedReadsTLSEndpoint:
    """
    Twisted's C{wrapClientTLS}: TLS over C{endpoint}'s connections, with
    L{SizedReadsTLSProtocol}.

    @ivar creator: the L{IOpenSSLClientConnectionCreator}.
    @ivar endpoint: the endpoint to the backend.
    """

    def __init__(self, creator, endpoint: IStreamClientEndpoint) -> None:
        self.creator = creator
        self.endpoint = endpoint

    def connect(self, protocolFactory):
        factory = SizedReadsTLSFactory(self.creator, True, protocolFactory)
        d = self.endpoint.connect(factory)
        return d.addCallback(lambda protocol: protocol.wrappedProtocol)
