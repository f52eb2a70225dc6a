"""
The shared cache seen by HTTP/2 clients: answers from the store and
coalesced streams on one connection.
"""

from __future__ import annotations

import attr
from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import TLS, CacheSettings, Listener, Route, TLSCertificate

from ..support.h2_client import connect_h2
from ..support.loopback import CountingSite, listen, proxy_config
from ..support.origins import Held, Scripted
from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker
from ..support.waiting import until


class HTTP2CacheTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def test_coalesced_streams_and_hits(self):
        held = Held(b"max-age=60", b"10")
        backend = Scripted(held)
        backend_port = yield listen(CountingSite(backend), self)
        cert, key = CertificateMaker(temporary_directory(self)).write(
            "localhost", ["localhost"]
        )
        config = attr.evolve(
            proxy_config([backend_port]),
            listeners={
                "websecure": Listener("websecure", "tcp:0:interface=127.0.0.1", tls="main")
            },
            tls={"main": TLS("main", (TLSCertificate(str(cert), str(key)),), default="localhost")},
            caches={"pages": CacheSettings("pages")},
            routes=(Route(0, "app", "/", cache="pages"),),
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        cache = service.runtime.caches["pages"]
        client = yield connect_h2(service.ports[0].getHost().port)

        def close():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(close)
        streams = [client.request(b"GET", b"/page") for _ in range(5)]
        yield held.arrived
        yield until(lambda: cache.metrics.lookups[b"collapsed"] == 4)
        held.first.write(b"first-last")
        held.first.finish()
        responses = yield gatherResults(streams)
        self.assertEqual([r.body for r in responses], [b"first-last"] * 5)
        hit = yield client.request(b"GET", b"/page")
        self.assertEqual(hit.body, b"first-last")
        self.assertTrue(hit.header(b"cache-status").startswith(b"txrevproxy; hit"))
        self.assertEqual(len(backend.requests), 1)
