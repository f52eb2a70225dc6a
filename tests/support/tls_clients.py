"""
TLS for the tests: certificate files made on the fly with the development
CA code, a TLS client on pyOpenSSL that sends the SNI name, ALPN offer and
protocol versions a test asks for, and a TLS backend.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
)
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.internet.ssl import CertificateOptions
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from txrevproxy.tls.devcerts import key_pem, make_ca, make_leaf, pem

from .loopback import RawClient
from .ocsp_responses import ocsp_response, utc_now


class CertificateMaker:
    """
    Writes certificate and key files signed by one test CA into a
    directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca, self.ca_key = make_ca()
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(pem(self.ca))

    def write(
        self,
        stem: str,
        names: Sequence[str],
        now: Optional[datetime.datetime] = None,
        days: int = 30,
        client: bool = False,
        ocsp_url: Optional[str] = None,
    ) -> Tuple[Path, Path]:
        """
        Write C{stem.pem} (leaf, then CA) and C{stem-key.pem}; with
        C{client}, a client certificate; with C{ocsp_url}, one that names
        that OCSP responder.

        @return: the two paths.
        """
        leaf, key = make_leaf(
            self.ca,
            self.ca_key,
            list(names),
            now=now,
            days=days,
            client=client,
            ocsp_url=ocsp_url,
        )
        cert_path = self.directory / (stem + ".pem")
        key_path = self.directory / (stem + "-key.pem")
        cert_path.write_bytes(pem(leaf, self.ca))
        key_path.write_bytes(key_pem(key))
        return cert_path, key_path

    def write_ocsp(
        self,
        stem: str,
        cert_path: Path,
        next_update: Optional[datetime.datetime] = None,
    ) -> Path:
        """
        Write C{stem.der}: a successful OCSP response, signed by the CA,
        saying that the leaf of C{cert_path} is good until C{next_update}
        (default: in a week).

        @return: its path.
        """
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        now = utc_now()
        if next_update is None:
            next_update = now + datetime.timedelta(days=7)
        this_update = min(now, next_update) - datetime.timedelta(days=1)
        response = ocsp_response(
            leaf, self.ca, self.ca_key, this_update=this_update, next_update=next_update
        )
        path = self.directory / (stem + ".der")
        path.write_bytes(response)
        return path


def served_serial(port: int, ca: Path, name: str = "localhost") -> int:
    """
    The serial number of the certificate 127.0.0.1:C{port} serves for
    C{name}, in a blocking handshake that trusts C{ca}.
    """
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def peer_names(client) -> Tuple[str, ...]:
    """
    The DNS names of the certificate a connected TLS client received.
    """
    certificate = client.transport.getPeerCertificate().to_cryptography()
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return tuple(san.value.get_values_for_type(x509.DNSName))


@implementer(IOpenSSLClientConnectionCreator)
class ProbingClientTLS:
    """
    A client that checks nothing (the tests look at the certificate they
    got) and sends exactly what the test asks for.

    @param server_name: the SNI name, or None to send none.
    @param alpn: the ALPN protocols to offer, or None.
    @param version: the one TLS version to speak (an C{SSL.TLS1_*_VERSION}),
        or None for OpenSSL's defaults.
    @param session: an C{SSL.Session} to resume.
    @param certificate: the C{(chain, key)} files of a client certificate
        to present, or None.
    """

    def __init__(
        self,
        server_name: Optional[str] = None,
        alpn: Optional[Sequence[bytes]] = None,
        version: Optional[int] = None,
        session=None,
        certificate: Optional[Tuple[Path, Path]] = None,
    ) -> None:
        self.server_name = server_name
        self.session = session
        self.context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        if certificate is not None:
            self.context.use_certificate_chain_file(str(certificate[0]).encode())
            self.context.use_privatekey_file(str(certificate[1]).encode())
        if version is not None:
            # OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security
            # level; lower it so that the client really offers them.
            self.context.set_min_proto_version(version)
            self.context.set_max_proto_version(version)
        if alpn:
            self.context.set_alpn_protos(list(alpn))
        if version is not None:
            # Last: pyOpenSSL 25 checks a cipher list with a throw-away
            # Connection, which marks the context as in use.
            self.context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tlsProtocol)
        if self.server_name is not None:
            connection.set_tlsext_host_name(self.server_name.encode("idna"))
        if self.session is not None:
            connection.set_session(self.session)
        return connection


@implementer(IHandshakeListener)
class TLSClient(RawClient):
    """
    A L{RawClient} over TLS: C{handshake} fires with it when the handshake
    is done, or fails with the reason the connection was lost before.
    L{request} sends a request and waits for one whole response.
    """

    def __init__(self) -> None:
        super().__init__()
        self.handshake: Deferred = Deferred()
        self._waiting: Optional[Deferred] = None

    def handshakeCompleted(self) -> None:
        self.handshake.callback(self)

    def connectionLost(self, reason=None) -> None:
        if not self.handshake.called:
            self.handshake.errback(reason)
        super().connectionLost(reason)

    def request(self, data: bytes) -> Deferred:
        """
        Send C{data}; fire with the next complete response (one with a
        Content-Length) as bytes.
        """
        self._waiting = Deferred()
        self.transport.write(data)
        return self._waiting

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        head, separator, body = self.received.partition(b"\r\n\r\n")
        if self._waiting is None or not separator:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            response = head + separator + body[:length]
            self.received = body[length:]
            waiting, self._waiting = self._waiting, None
            waiting.callback(response)


def connect_tls(port: int, creator: ProbingClientTLS) -> Deferred:
    """
    Connect a L{TLSClient} to 127.0.0.1:port.

    @return: a Deferred firing with the client once the handshake is done.
    """
    client = TLSClient()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(lambda: client))
    d = endpoint.connect(factory)
    d.addCallback(lambda _: client.handshake)
    return d


def tls_site_factory(
    site, cert_path: Path, key_path: Path, protocols: Optional[List[bytes]] = None
) -> TLSMemoryBIOFactory:
    """
    A backend site served over TLS with one certificate.

    @param protocols: what it accepts through ALPN (C{b"h2"} makes
        Twisted's site speak HTTP/2), or L{None}: no ALPN.
    """
    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    options = CertificateOptions(
        privateKey=PKey.from_cryptography_key(key),
        certificate=X509.from_cryptography(chain[0]),
        extraCertChain=[X509.from_cryptography(c) for c in chain[1:]],
        acceptableProtocols=protocols,
    )
    return TLSMemoryBIOFactory(options, False, site)


class _OpenSSLCommand(ProcessProtocol):
    """
    Runs C{openssl} with C{stdin} as its whole input, collecting what it
    prints.
    """

    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.output = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.done.callback((reason.value.exitCode, self.output.decode("latin-1")))


def s_client(port: int, *options: str, request: bytes = b"") -> Deferred:
    """
    Run C{openssl s_client} against 127.0.0.1:port with C{options}
    (C{-sess_out}, C{-sess_in}, C{-tls1_2} ...), sending C{request} and
    reading until the server closes (C{-ign_eof}: a TLS 1.3 server sends
    its session tickets after the handshake, so a client that left at once
    would have none to save).

    @return: a Deferred of C{(exit code, everything it printed)}.
    """
    command = _OpenSSLCommand(request)
    arguments = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % (port,)]
    arguments += ["-ign_eof", *options]
    reactor.spawnProcess(command, "openssl", arguments, env=None)
    return command.done
