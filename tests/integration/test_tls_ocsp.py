"""
OCSP stapling from a configured file, checked with C{openssl s_client
-status} over loopback.
"""

from __future__ import annotations

import datetime

from twisted.internet.defer import inlineCallbacks

from ..support.tls_clients import s_client
from ..support.tls_listeners import TLSListenerCase

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class StaplingTests(TLSListenerCase):
    """
    A listener as L{TLSListenerCase} starts it, whose localhost
    certificate may staple a response the test CA signed.
    """


    @inlineCallbacks
    def status(self, port, server_name="localhost"):
        """
        What C{openssl s_client -status} printed for C{server_name}.
        """
        code, output = yield s_client(
            port, "-servername", server_name, "-status", request=REQUEST
        )
        self.assertEqual(code, 0, output)
        self.assertIn("HTTP/1.1 200", output)
        return output

    def write_response(self, **options):
        return str(self.maker.write_ocsp("localhost", self.localhost[0], **options))

    @inlineCallbacks
    def test_configured_response_is_stapled(self):
        output = yield self.status(self.start(ocsp=self.write_response()))
        self.assertIn("OCSP Response Status: successful", output)
        self.assertIn("Cert Status: good", output)

    @inlineCallbacks
    def test_certificate_without_ocsp_staples_nothing(self):
        port = self.start(ocsp=self.write_response())
        output = yield self.status(port, "a.example.test")
        self.assertIn("OCSP response: no response sent", output)
        output = yield self.status(self.start())
        self.assertIn("OCSP response: no response sent", output)

    @inlineCallbacks
    def test_expired_response_is_not_stapled(self):
        expired = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        port = self.start(ocsp=self.write_response(next_update=expired))
        output = yield self.status(port)
        self.assertIn("OCSP response: no response sent", output)

    @inlineCallbacks
    def test_reload_staples_the_refreshed_response(self):
        expired = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        port = self.start(ocsp=self.write_response(next_update=expired))
        self.write_response()
        self.assertEqual(self.service.reload_certificates(), [])
        output = yield self.status(port)
        self.assertIn("OCSP Response Status: successful", output)
