"""
The TLS protocol of a listener's connections, started with only what a
server needs.

Twisted's L{TLSMemoryBIOProtocol.makeConnection} costs a connection that
only resumes a session (about a millisecond of CPU on CPython, half of it
in the interpreter) more than it needs:

  - it declares the transport's interfaces on the protocol one at a time,
    nine C{directlyProvides} calls each replacing the last, before
    L{ProtocolWrapper.makeConnection} declares them all at once: 20 us on
    CPython 3.11 (C{timeit}), more under load, when zope.interface's cache
    of the intermediate declarations has let them go;
  - it runs the handshake at once, which for a server only finds that the
    client's hello has not come: two exceptions out of pyOpenSSL
    (C{WantReadError} from C{do_handshake} and from the read of the bytes
    to send), and the handshake starts anyway when the hello comes
    (C{dataReceived});
  - Twisted 26 sets the connection's app data, which the proxy's
    connection creator has already set, and Twisted 25.5 asks the factory
    to apply ALPN, which L{alpn_untouched} makes a no-op.

L{ServerTLSProtocol} connects with the connection creator it was given,
in the same steps in every version of Twisted, and leaves the protocol as
Twisted's leaves it: the same attributes, the transport's interfaces, the
wrapped protocol connected (C{tests/unit/test_server_tls.py} compares
the two).
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.protocols.policies import ProtocolWrapper

from .alpn_untouched import ALPNUntouchedTLSFactory
from .direct_send import direct_writer
from .sized_reads import SizedReadsTLSProtocol

TWISTED_PRIVATE = (
    # Set as Twisted's makeConnection sets them (and read by its methods).
    "twisted.protocols.tls.TLSMemoryBIOProtocol._tlsConnection",
    "twisted.protocols.tls.TLSMemoryBIOProtocol._appSendBuffer",
)


class ServerTLSProtocol(SizedReadsTLSProtocol):
    """
    L{SizedReadsTLSProtocol} for the server side of a listener's
    connections, started without the work of Twisted's C{makeConnection}
    that a server does not need (see the module docstring).
    """

    def makeConnection(self, transport) -> None:
        self._send = direct_writer(transport)
        self._tlsConnection = self.factory.connectionFor(self)
        self._appSendBuffer = []
        # Declares the transport's interfaces at once, connects, registers
        # with the factory, and connects the wrapped protocol.  The
        # handshake starts in dataReceived, with the client's hello.
        ProtocolWrapper.makeConnection(self, transport)


class ServerTLSFactory(ALPNUntouchedTLSFactory):
    """
    A listener's TLS wrapping factory, making L{ServerTLSProtocol}s.

    @ivar creator: the L{IOpenSSLServerConnectionCreator} that makes each
        connection's OpenSSL connection, and sets its app data to the
        protocol.
    """

    protocol = ServerTLSProtocol

    def __init__(self, creator, wrappedFactory, clock=None) -> None:
        super().__init__(creator, False, wrappedFactory, clock)
        self.creator = creator

    def connectionFor(self, protocol: ServerTLSProtocol) -> SSL.Connection:
        """
        The OpenSSL connection of a new C{protocol}, waiting for a client's
        hello.
        """
        connection = self.creator.serverConnectionForTLS(protocol)
        connection.set_accept_state()
        return connection
