"""
TLS to C{https://} backends.

A backend's certificate is verified (with C{service_identity}, through
Twisted's L{optionsForClientTLS}) against the name the proxy sends as SNI:
the backend URL's host, or the upstream's C{tls_server_name}.  It must
chain to the system's trusted CAs, or to the CAs of the C{ca} file when
one is given.  C{verify = false} turns checking off (for a backend with a
self-signed certificate you cannot replace); the connection is still
encrypted.
"""

from __future__ import annotations

from typing import Optional, Tuple

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from zope.interface import implementer

from .files import read_ca

#: The one protocol offered to a backend of an HTTP/1.1 upstream, so that
#: the backend does not pick h2; an upstream with C{protocol = "h2"} offers
#: only C{h2} (L{HTTP2_PROTOCOLS}).
BACKEND_PROTOCOLS = (b"http/1.1",)
HTTP2_PROTOCOLS = (b"h2",)


@implementer(IOpenSSLClientConnectionCreator)
class UnverifiedClientTLS:
    """
    TLS to a backend without checking its certificate (C{verify = false}):
    still TLS 1.2 or later, still with SNI (unless the name is an address).
    """

    def __init__(self, server_name: str, protocols=BACKEND_PROTOCOLS) -> None:
        self._server_name = (
            None
            if isIPAddress(server_name) or isIPv6Address(server_name)
            else server_name.encode("idna")
        )
        self._context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self._context.set_min_proto_version(SSL.TLS1_2_VERSION)
        self._context.set_alpn_protos(list(protocols))

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


def client_tls_trust(ca: Optional[str]):
    """
    The authorities a TLS client trusts: those of the PEM file C{ca}, or
    the platform's when L{None}.

    @raise txrevproxy.tls.files.FileProblem: when the C{ca} file cannot be
        read.
    """
    if ca is None:
        return platformTrust()
    return trustRootFromCertificates(
        [Certificate.load(each.public_bytes(Encoding.DER)) for each in read_ca(ca)]
    )


def client_tls(
    server_name: str,
    ca: Optional[str] = None,
    verify: bool = True,
    protocols: Tuple[bytes, ...] = BACKEND_PROTOCOLS,
) -> IOpenSSLClientConnectionCreator:
    """
    The connection creator for a backend's TLS (the settings of a
    C{BackendTLS} of the configuration).  Reads the C{ca} file, so it is
    called when the runtime is built, never per connection.

    @param server_name: the name sent with SNI and verified.
    @param ca: the PEM file of the authorities to trust, or L{None} for the
        platform's.
    @param verify: whether the backend's certificate is checked at all.
    @param protocols: the protocols offered through ALPN.

    @raise txrevproxy.tls.files.FileProblem: when the C{ca} file cannot be
        read.
    """
    if not verify:
        return UnverifiedClientTLS(server_name, protocols)
    return optionsForClientTLS(
        server_name,
        trustRoot=client_tls_trust(ca),
        acceptableProtocols=list(protocols),
        extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_2},
    )
