"""
A proxy with a TLS listener in front of a plain echo backend, for the TLS
integration tests: the certificates it serves, and how it is started.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import (
    TLS,
    Config,
    Listener,
    Route,
    ServerSettings,
    TLSCertificate,
)

from .loopback import CountingSite, Echo, listen, proxy_config
from .processes import temporary_directory
from .tls_clients import CertificateMaker


class TLSListenerCase(TestCase):
    """
    Makes the localhost, wildcard and other certificates and an echo
    backend; L{start} starts a proxy with a TLS listener for them.
    """

    @inlineCallbacks
    def setUp(self):
        self.directory = temporary_directory(self)
        self.maker = CertificateMaker(self.directory)
        self.localhost = self.maker.write("localhost", ["localhost"])
        self.wildcard = self.maker.write("wildcard", ["*.example.test"])
        self.other = self.maker.write("other", ["other.test", "www.other.test"])
        self.backend_port = yield listen(CountingSite(Echo()), self)

    def start(
        self,
        http2: bool = True,
        min_version=None,
        hsts=None,
        redirect=False,
        client_ca=None,
        client_auth="require",
        subject_header=None,
        table="main",
        ocsp=None,
        ocsp_fetch=False,
        ocsp_responder=None,
        proxy_protocol=False,
        **policy,
    ) -> int:
        """
        Start a proxy with a TLS listener (and, with C{redirect}, a plain
        one redirecting to it, whose port is then C{self.service.ports[1]}).
        C{policy}: more keys of the L{TLS} table (C{preset}, C{curves} ...);
        C{ocsp}, C{ocsp_fetch}, C{ocsp_responder}: those keys of the
        localhost certificate; C{proxy_protocol}: the TLS listener's.

        @return: the TLS listener's port.
        """
        certificates = (
            TLSCertificate(
                str(self.localhost[0]),
                str(self.localhost[1]),
                ocsp=ocsp,
                ocsp_responder=ocsp_responder,
                ocsp_fetch=ocsp_fetch or ocsp_responder is not None,
            ),
        ) + tuple(
            TLSCertificate(str(cert), str(key)) for cert, key in (self.wildcard, self.other)
        )
        listeners = {
            "websecure": Listener(
                "websecure",
                "tcp:0:interface=127.0.0.1",
                tls=table,
                http2=http2,
                hsts=hsts,
                proxy_protocol=proxy_protocol,
            )
        }
        if redirect:
            listeners["web"] = Listener(
                "web", "tcp:0:interface=127.0.0.1", redirect_to_https="websecure"
            )
        config = Config(
            server=ServerSettings(),
            listeners=listeners,
            upstreams=proxy_config([self.backend_port]).upstreams,
            routes=(Route(0, "app", "/"),),
            tls={
                table: TLS(
                    table,
                    certificates,
                    default="localhost",
                    min_version=min_version,
                    client_ca=client_ca,
                    client_auth=client_auth,
                    client_subject_header=subject_header,
                    **policy,
                )
            },
        )
        self.service = ProxyService(config, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        return self.service.ports[0].getHost().port
