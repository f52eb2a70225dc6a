"""
Session resumption and the TLS policy presets of a TLS listener, checked
with C{openssl s_client} over loopback.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from txrevproxy.tls.groups import groups_settable

from ..support.tls_clients import s_client
from ..support.tls_listeners import TLSListenerCase

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class ResumptionTests(TLSListenerCase):
    """
    A listener as L{TLSListenerCase} starts it, and C{s_client}.
    """


    @inlineCallbacks
    def resumes(self, port, *options):
        """
        Connect twice with C{s_client}, saving the session and resuming
        it: return what the second connection printed.
        """
        session = str(self.directory / "session.pem")
        code, first = yield s_client(
            port, "-servername", "localhost", "-sess_out", session, *options,
            request=REQUEST,
        )
        self.assertEqual(code, 0, first)
        self.assertIn("HTTP/1.1 200", first)
        self.assertIn("\nNew, ", first)
        code, second = yield s_client(
            port, "-servername", "localhost", "-sess_in", session, *options,
            request=REQUEST,
        )
        self.assertEqual(code, 0, second)
        self.assertIn("HTTP/1.1 200", second)
        return second

    @inlineCallbacks
    def test_tls_1_3_session_is_resumed_by_ticket(self):
        output = yield self.resumes(self.start(), "-tls1_3")
        self.assertIn("\nReused, TLSv1.3", output)

    @inlineCallbacks
    def test_tls_1_2_session_is_resumed(self):
        output = yield self.resumes(self.start(), "-tls1_2")
        self.assertIn("\nReused, TLSv1.2", output)

    @inlineCallbacks
    def test_tls_1_2_session_is_resumed_from_the_cache_without_tickets(self):
        output = yield self.resumes(self.start(), "-tls1_2", "-no_ticket")
        self.assertIn("\nReused, TLSv1.2", output)

    @inlineCallbacks
    def test_session_is_resumed_after_an_sni_switch(self):
        port = self.start()
        session = str(self.directory / "session.pem")
        for options in (("-sess_out", session), ("-sess_in", session)):
            code, output = yield s_client(
                port, "-servername", "shop.example.test", "-tls1_2", *options,
                request=REQUEST,
            )
        self.assertIn("\nReused, TLSv1.2", output)

    @inlineCallbacks
    def test_modern_preset_refuses_tls_1_2(self):
        port = self.start(preset="modern")
        code, output = yield s_client(port, "-tls1_2", request=REQUEST)
        self.assertNotEqual(code, 0, output)
        self.assertNotIn("HTTP/1.1 200", output)
        code, output = yield s_client(port, "-tls1_3", request=REQUEST)
        self.assertIn("HTTP/1.1 200", output)

    @inlineCallbacks
    def test_old_preset_serves_tls_1_0(self):
        port = self.start(preset="old")
        code, output = yield s_client(
            port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", request=REQUEST
        )
        self.assertIn("HTTP/1.1 200", output)
        self.assertIn("Protocol  : TLSv1\n", output)

    @inlineCallbacks
    def test_intermediate_preset_refuses_tls_1_1(self):
        port = self.start()
        code, output = yield s_client(
            port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", request=REQUEST
        )
        self.assertNotIn("HTTP/1.1 200", output)

    @inlineCallbacks
    def test_ciphers_and_curves_are_used(self):
        port = self.start(ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384")
        code, output = yield s_client(port, "-tls1_2", request=REQUEST)
        self.assertIn("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384", output)
        if not groups_settable():
            return
        port = self.start(curves=("secp384r1",))
        code, output = yield s_client(port, "-tls1_3", request=REQUEST)
        self.assertIn("HTTP/1.1 200", output)
        self.assertRegex(output, "(Negotiated TLS1.3 group|Server Temp Key): (secp384r1|ECDH, secp384r1)")

