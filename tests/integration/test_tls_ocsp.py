"""
OCSP stapling from a configured file and fetched from a responder (the
tests' own, on 127.0.0.1), checked with C{openssl s_client -status} over
loopback.
"""

from __future__ import annotations

import datetime
import re

from cryptography import x509
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txrevproxy.tls.ocsp import OCSPError
from txrevproxy.tls.stapling import MAX_ANSWER, ResponderClient

from ..support.loopback import listen
from ..support.ocsp_responses import REVOKED, Responder, logged_warnings
from ..support.tls_clients import s_client
from ..support.tls_listeners import TLSListenerCase

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class Stapling(TLSListenerCase):
    """
    A listener as L{TLSListenerCase} starts it, and what a client that
    asks for the certificate status sees.
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


class StaplingTests(Stapling):
    """
    The localhost certificate may staple a response file the test CA
    signed.
    """

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


class FetchedStaplingTests(Stapling):
    """
    The localhost certificate names the tests' OCSP responder, which
    answers for the test CA.
    """

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.responder = Responder(self.maker.ca, self.maker.ca_key)
        port = yield listen(Site(self.responder), self)
        self.url = "http://127.0.0.1:%d/" % (port,)
        self.localhost = self.maker.write("localhost", ["localhost"], ocsp_url=self.url)
        self.responder.know(
            x509.load_pem_x509_certificates(self.localhost[0].read_bytes())[0]
        )
        self.warnings = logged_warnings(self)

    @inlineCallbacks
    def fetched(self, **options):
        """
        Start the proxy and wait until the responder has been asked (the
        stapler asks at start; asking again now gives a Deferred to wait
        on).

        @return: the listener's port.
        """
        port = self.start(**options)
        yield self.service.stapler.refresh()
        return port

    @inlineCallbacks
    def test_response_of_the_certificate_responder_is_stapled(self):
        output = yield self.status((yield self.fetched(ocsp_fetch=True)))
        self.assertIn("OCSP Response Status: successful", output)
        self.assertIn("Cert Status: good", output)
        self.assertEqual(
            {content_type for _, content_type in self.responder.requests},
            {b"application/ocsp-request"},
        )

    @inlineCallbacks
    def test_ocsp_responder_overrides_the_certificate_url(self):
        self.localhost = self.maker.write("localhost", ["localhost"])
        self.responder.know(
            x509.load_pem_x509_certificates(self.localhost[0].read_bytes())[0]
        )
        output = yield self.status((yield self.fetched(ocsp_responder=self.url)))
        self.assertIn("Cert Status: good", output)

    @inlineCallbacks
    def test_responder_down_leaves_the_handshake_without_staple(self):
        listening = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Site(Resource())
        )
        closed = "http://127.0.0.1:%d/" % (listening.getHost().port,)
        yield listening.stopListening()
        output = yield self.status((yield self.fetched(ocsp_responder=closed)))
        self.assertIn("OCSP response: no response sent", output)
        self.assertTrue(
            any(
                warning.startswith("tls.main.certificates[0]: OCSP responder %s: " % (closed,))
                and "refused" in warning
                for warning in self.warnings
            ),
            self.warnings,
        )

    @inlineCallbacks
    def test_revoked_answer_is_not_stapled(self):
        self.responder.status = REVOKED
        output = yield self.status((yield self.fetched(ocsp_fetch=True)))
        self.assertIn("OCSP response: no response sent", output)
        self.assertIn("revoked", self.warnings[-1])

    @inlineCallbacks
    def test_revoked_answer_keeps_the_previous_good_one(self):
        port = yield self.fetched(ocsp_fetch=True)
        self.responder.status = REVOKED
        yield self.service.stapler.refresh()
        output = yield self.status(port)
        self.assertIn("Cert Status: good", output)

    @inlineCallbacks
    def test_refreshed_response_replaces_the_previous(self):
        port = yield self.fetched(ocsp_fetch=True)
        first = next_update((yield self.status(port)))
        self.responder.lifetime = datetime.timedelta(days=1)
        yield self.service.stapler.refresh()
        second = next_update((yield self.status(port)))
        self.assertNotEqual(first, second)

    @inlineCallbacks
    def test_reload_keeps_the_fetched_response(self):
        port = yield self.fetched(ocsp_fetch=True)
        asked = len(self.responder.requests)
        self.assertEqual(self.service.reload(self.service.config), [])
        self.assertEqual(self.service.reload_certificates(), [])
        output = yield self.status(port)
        self.assertIn("Cert Status: good", output)
        self.assertEqual(len(self.responder.requests), asked)


def next_update(output: str) -> str:
    return re.search(r"Next Update: (.*)", output).group(1)


class Troubled(Resource):
    """
    A responder in trouble: it answers 503, or with a body too large.
    """

    isLeaf = True

    def render_POST(self, request) -> bytes:
        if request.path == b"/large":
            return b"x" * (MAX_ANSWER + 1)
        request.setResponseCode(503)
        return b"busy"


class ResponderClientTests(TestCase):
    @inlineCallbacks
    def ask(self, path: str) -> str:
        port = yield listen(Site(Troubled()), self)
        url = "http://127.0.0.1:%d%s" % (port, path)
        d = ResponderClient(reactor).ask(url, b"request")
        failure = yield self.assertFailure(d, OCSPError)
        return str(failure)

    @inlineCallbacks
    def test_answer_other_than_200_is_refused(self):
        self.assertEqual((yield self.ask("/")), "the responder answered HTTP 503")

    @inlineCallbacks
    def test_answer_too_large_is_refused(self):
        self.assertEqual(
            (yield self.ask("/large")),
            "the answer is larger than %d bytes" % (MAX_ANSWER,),
        )
