"""
What the operations see of a TLS listener: handshakes counted by version,
and the version in the access log.
"""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import server

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import (
    TLS,
    Config,
    Listener,
    LogSettings,
    Route,
    ServerSettings,
    TLSCertificate,
)

from ..support.loopback import Echo, listen, proxy_config
from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker, ProbingClientTLS, connect_tls


class TLSOperationsTests(TestCase):
    @inlineCallbacks
    def test_handshake_is_counted_and_logged_with_its_version(self):
        directory = temporary_directory(self)
        cert, key = CertificateMaker(directory).write("localhost", ["localhost"])
        backend = yield listen(server.Site(Echo()), self)
        config = Config(
            server=ServerSettings(),
            listeners={
                "websecure": Listener(
                    "websecure", "tcp:0:interface=127.0.0.1", tls="main", http2=False
                )
            },
            upstreams=proxy_config([backend]).upstreams,
            routes=(Route(0, "app", "/"),),
            tls={"main": TLS("main", (TLSCertificate(str(cert), str(key)),))},
            log=LogSettings(str(directory / "access.log"), "json"),
        )
        service = ProxyService(config, reactor)
        service.startService()
        port = service.ports[0].getHost().port
        client = yield connect_tls(port, ProbingClientTLS("localhost"))
        response = yield client.request(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        version = client.transport.getHandle().get_protocol_version_name()
        client.transport.loseConnection()
        yield client.closed
        self.assertEqual(
            service.snapshot()["tls_handshakes"], {"websecure\t%s" % (version,): 1}
        )
        yield service.stopService()
        entry = json.loads((directory / "access.log").read_text())
        self.assertEqual((entry["tls"], entry["status"]), (version, 200))
