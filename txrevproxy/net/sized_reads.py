"""
The TLS protocol of the proxy's connections, client and backend sides:
Twisted's, calling OpenSSL through L{txrevproxy.net.openssl_io}.

Twisted's L{TLSMemoryBIOProtocol} asks pyOpenSSL for up to 32 KiB at every
read of decrypted bytes and of encrypted bytes to send, including the last
read of each batch, which only finds out there is nothing more (an
exception).  pyOpenSSL allocates a buffer of the size asked for on every
call.  On CPython that is a cheap C{malloc}; on PyPy every such buffer
counts as memory pressure towards the next major collection, and with four
32 KiB buffers per small request the garbage collector took over half of
the proxy's time (measured on PyPy 3.9 with C{wrk} on a small HTTPS
response: 200 us of GC per request, against 30 us with reads sized to what
was there).  The reads of L{txrevproxy.net.openssl_io} ask OpenSSL how
much it holds first, and read that into one buffer; the bytes received
and the bytes written go to OpenSSL without pyOpenSSL's wrapping.
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
from .openssl_io import OPENSSL_IO

TWISTED_PRIVATE = (
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushReceiveBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._flushSendBIO",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._lostTLSConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._aborted",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._shutdownTLS",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsShutdownFinished",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._handshakeDone",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._appSendBuffer",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._bufferedWrite",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._write",
)


class SizedReadsTLSProtocol(BufferingTLSTransport):
    """
    L{BufferingTLSTransport} (Twisted's TLS protocol, with its coalescing
    of small writes) calling OpenSSL through L{OPENSSL_IO}: once its
    handshake is done, it reads decrypted bytes while there are some, and
    the encrypted bytes to send in one piece.  What it sends goes straight
    to the socket when it can (see
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

    def dataReceived(self, data: bytes) -> None:
        """
        Twisted's, for a connection whose handshake is done and that holds
        no writes made before it: the bytes to OpenSSL, and what they
        decrypt to out of it.
        """
        if not self._handshakeDone or self._appSendBuffer:
            super().dataReceived(data)
            return
        OPENSSL_IO.feed(self._tlsConnection, data)
        self._flushReceiveBIO()

    def _write(self, data: bytes) -> None:
        # Twisted's loop, with OPENSSL_IO's calls: a record at a time,
        # each sent as it is made.
        if self._lostTLSConnection:
            return
        connection = self._tlsConnection
        encrypt = OPENSSL_IO.encrypt
        sent = 0
        while sent < len(data):
            try:
                sent += encrypt(connection, data[sent : sent + 16384])
            except WantReadError:
                # A handshake waits for the peer: the rest waits with it.
                self._bufferedWrite(data[sent:])
                break
            except Error:
                # The connection is lost, with the failure as its reason.
                self._tlsShutdownFinished(Failure())
                break
            self._flushSendBIO()

    def _flushReceiveBIO(self) -> None:
        # Twisted's loop, reading until there is nothing more.
        connection = self._tlsConnection
        decrypted = OPENSSL_IO.decrypted
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
        data = OPENSSL_IO.encrypted(self._tlsConnection)
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
