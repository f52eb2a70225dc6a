"""
The PROXY protocol over real sockets: headers in on a listener, before
TLS too, from Python and from curl.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from txrevproxy.http.proxy_protocol import proxy_header_v1, proxy_header_v2

from ..support.configs import parse
from ..support.loopback import CountingSite, Echo, echoed_headers, listen, raw_exchange
from ..support.origins import parse_response
from ..support.tls_listeners import TLSListenerCase

REQUEST = b"GET /who HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"


class ProxyProtocolInTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def setUp(self):
        backend_port = yield listen(CountingSite(Echo()), self)
        from txrevproxy.app.service import ProxyService

        service = ProxyService(
            parse(
                """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
proxy_protocol = true

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
upstream = "app"
"""
                % (backend_port,)
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        self.port = service.ports[0].getHost().port

    @inlineCallbacks
    def test_v2_header_names_an_ipv6_client(self):
        header = proxy_header_v2(("2001:db8::7", 40000), ("2001:db8::1", 8443))
        status, _, body = parse_response((yield raw_exchange(self.port, header + REQUEST)))
        self.assertEqual(status, 200)
        headers = echoed_headers(body)
        self.assertEqual(headers[b"x-forwarded-for"], [b"2001:db8::7"])
        self.assertEqual(headers[b"x-forwarded-port"], [b"8443"])

    @inlineCallbacks
    def test_v1_header_then_request_in_one_write(self):
        header = proxy_header_v1(("203.0.113.9", 40000), ("192.0.2.1", 80))
        status, _, body = parse_response((yield raw_exchange(self.port, header + REQUEST)))
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-for"], [b"203.0.113.9"])

    @inlineCallbacks
    def test_connection_without_a_header_is_closed_unanswered(self):
        raw = yield raw_exchange(self.port, REQUEST)
        self.assertEqual(raw, b"")


class ProxyProtocolBeforeTLSTests(TLSListenerCase):
    timeout = 30

    @inlineCallbacks
    def test_curl_sends_the_header_before_its_handshake(self):
        curl = shutil.which("curl")
        if curl is None:
            raise self.skipTest("curl is not installed")
        port = self.start(proxy_protocol=True)
        for version in ("--http1.1", "--http2"):
            out, err, code = yield getProcessOutputAndValue(
                curl,
                [
                    "-sS",
                    version,
                    "--haproxy-protocol",
                    "--cacert",
                    str(self.maker.ca_path),
                    "--resolve",
                    "localhost:%d:127.0.0.1" % (port,),
                    "-w",
                    "\n%{http_version}",
                    "https://localhost:%d/who" % (port,),
                ],
                env=os.environ,
            )
            self.assertEqual(code, 0, err)
            body, _, http_version = out.rpartition(b"\n")
            self.assertEqual(http_version, b"1.1" if version == "--http1.1" else b"2")
            headers = echoed_headers(body)
            self.assertEqual(headers[b"x-forwarded-for"], [b"127.0.0.1"])
            self.assertEqual(headers[b"x-forwarded-port"], [b"%d" % (port,)])
