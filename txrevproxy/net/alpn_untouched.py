"""
A TLS listener whose ALPN is its connection creator's business alone.

The proxy's server connection creator sets, once per certificate context,
an ALPN callback that offers the listener's protocols.  Twisted before 26
also sets the protocols itself, on every new connection, when the wrapped
factory provides C{IProtocolNegotiationFactory} (a twisted.web C{Site}
does): it replaces that callback, on a context shared with the connections
already open.  Twisted 26 leaves ALPN to the connection creator, and makes
each connection through the creator alone.
"""

from __future__ import annotations

from OpenSSL import SSL

from .sized_reads import SizedReadsTLSFactory

TWISTED_PRIVATE = (
    # Twisted 25.5 calls this, overridden below, for every new connection;
    # Twisted 26 has no such step and makes the connection with the
    # creator through this callable alone.
    (
        "twisted.protocols.tls.TLSMemoryBIOFactory._applyProtocolNegotiation",
        "twisted.protocols.tls.TLSMemoryBIOFactory._creatorCallable",
    ),
)


class ALPNUntouchedTLSFactory(SizedReadsTLSFactory):
    """
    Twisted's TLS wrapping factory (with sized reads) that leaves the ALPN
    protocols of its connections to its connection creator, in every
    version of Twisted.
    """

    def _applyProtocolNegotiation(self, connection: SSL.Connection) -> None:
        """
        Leave ALPN alone: Twisted before 26 calls this for every new
        connection to set the wrapped factory's protocols on the
        connection's context (see the module docstring).
        """
