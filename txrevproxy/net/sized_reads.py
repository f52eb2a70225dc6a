"""
The TLS protocol of the proxy's connections, client and backend sides:
Twisted's, reading out of OpenSSL only what is there.

Twisted's L{TLSMemoryBIOProtocol} asks pyOpenSSL for up to 32 KiB at every
read of decrypted bytes and of encrypted bytes to send, including the last
read of each batch, which only finds out there is nothing more (an
exception).  pyOpenSSL allocates a buffer of the size asked for on every
call.  On CPython that is a cheap C{malloc}; on PyPy every such buffer
counts as memory pressure towards the next major collection, and with four
32 KiB buffers per small request the garbage collector took over half of
the proxy's time (measured on PyPy 3.9 with C{wrk} on a small HTTPS
response: 200 us of GC per request, against 30 us with reads sized to what
was there).  The reads of L{txrevproxy.net.openssl_reads} ask OpenSSL how
much it holds first, and read that into one buffer.
"""

from __future__ import annotations

from typing import List

from OpenSSL.SSL import Error, ZeroReturnError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from .direct_send import direct_writer
from .openssl_reads import READS

TWISTED_PRIVATE = (
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushReceiveBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushSendBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._lostTLSConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._aborted",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._shutdownTLS",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsShutdownFinished",
)

class SizedReadsTLSProtocol(BufferingTLSTransport):
    """
    L{BufferingTLSTransport} (Twisted's TLS protocol, with its coalescing
    of small writes) reading out of OpenSSL with L{READS}: decrypted bytes
    while there are some, and the encrypted bytes to send in one piece.
    What it sends goes straight to the socket when it can (see
    L{txrevproxy.net.direct_send}), and what a close sends (the last
    writes and the close_notify alert) goes in one write.
    """

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

    def _flushReceiveBIO(self) -> None:
        # Twisted's loop, with this module's reads.
        connection = self._tlsConnection
        decrypted = READS.decrypted
        while not self._lostTLSConnection:
            try:
                data = decrypted(connection)
            except ZeroReturnError:
                # The peer closed TLS; no more data comes on this connection.
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                # A TLS failure (bad record, renegotiation refused...).
                self._tlsShutdownFinished(Failure())
            else:
                if not data:
                    break
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:
        data = READS.encrypted(self._tlsConnection)
        if data:
            self._send(data)


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
