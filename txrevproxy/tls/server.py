"""
TLS on a listener: the server connection creator and the wrapping of a
listener's site.
"""

from __future__ import annotations

from typing import Tuple

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

from ..net.server_tls import ServerTLSFactory
from .store import HTTP1_ONLY, HTTP2_AND_HTTP1, CertificateStore


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    Makes the OpenSSL connection of each connection a listener accepts: it
    starts on the store's default context, and the SNI callback moves it
    to the context of the name the client asks for.  Its app data is the
    L{TLSMemoryBIOProtocol}.

    @ivar store: the L{CertificateStore} of the listener's C{tls} table.
    """

    def __init__(self, store: CertificateStore) -> None:
        self.store = store

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = SSL.Connection(self.store.default_context, None)
        # As Twisted's own creators do (L{ServerTLSFactory} leaves it to
        # this): the ALPN callback finds the listener through it.
        connection.set_app_data(tlsProtocol)
        return connection


class ListenerTLSFactory(ServerTLSFactory):
    """
    A listener's site served over TLS.

    L{ServerTLS} makes each connection's TLS protocol the app data of its
    OpenSSL connection, so the ALPN callback
    (L{txrevproxy.tls.store.select_protocol}) finds the listener's
    protocols through the connection's protocol's factory: this one.
    Twisted's factory does not set them itself (see
    L{txrevproxy.net.alpn_untouched}).

    @ivar alpn_protocols: the ALPN protocols offered, preferred first.
    """

    def __init__(
        self, store: CertificateStore, alpn_protocols: Tuple[bytes, ...], site, clock
    ) -> None:
        super().__init__(ServerTLS(store), site, clock)
        self.alpn_protocols = alpn_protocols


def tls_factory(site, store: CertificateStore, http2: bool, clock=None):
    """
    Serve C{site} over TLS with the certificates of C{store}.

    @param http2: offer C{h2} before C{http/1.1} through ALPN; C{site} must
        then be a L{txrevproxy.server.http2.NegotiatingSite}, which speaks
        whichever protocol the handshake settled on.
    @return: a L{twisted.protocols.tls.TLSMemoryBIOFactory} to listen with.
    """
    protocols = HTTP2_AND_HTTP1 if http2 else HTTP1_ONLY
    return ListenerTLSFactory(store, protocols, site, clock)
