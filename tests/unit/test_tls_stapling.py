"""
Fetched OCSP stapling without a network: the C{ocsp_fetch} and
C{ocsp_responder} keys and their problems, and the stapler driven by a
L{Clock} and a responder that answers when the test says.
"""

from __future__ import annotations

import datetime
import time
from typing import List, Tuple

from cryptography import x509
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from txrevproxy.config import ConfigError, load_config
from txrevproxy.config.model import TLS, TLSCertificate
from txrevproxy.tls.devcerts import pem
from txrevproxy.tls.files import collect
from txrevproxy.tls.ocsp import OCSPError, request_for
from txrevproxy.tls.stapling import OCSPStapler, ResponderClient
from txrevproxy.tls.store import CertificateStore, StapleSlot

from ..support.ocsp_responses import REVOKED, UNKNOWN, logged_warnings, ocsp_response
from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker
from .test_tls_config import LISTENERS

AIA_URL = "http://ocsp.example.test/"

class Certificates(TestCase):
    """
    A test CA and a localhost certificate that names L{AIA_URL}.
    """

    def setUp(self):
        self.directory = temporary_directory(self)
        self.maker = CertificateMaker(self.directory)
        self.cert, self.key = self.maker.write("localhost", ["localhost"], ocsp_url=AIA_URL)
        self.leaf = x509.load_pem_x509_certificates(self.cert.read_bytes())[0]


class ConfigTests(Certificates):
    def load(self, entry: str):
        path = self.directory / "proxy.toml"
        path.write_text(
            LISTENERS
            + "[tls.default]\n"
            + 'certificates = [{ cert = "localhost.pem", key = "localhost-key.pem", %s }]\n'
            % (entry,)
        )
        return load_config(str(path))

    def problems(self, entry: str) -> List[str]:
        return self.assertRaises(ConfigError, self.load, entry).problems

    def fetch(self, entry: str):
        return collect(self.load(entry).tls["default"]).entries[0].fetch

    def test_ocsp_fetch_asks_the_responder_the_certificate_names(self):
        fetch = self.fetch("ocsp_fetch = true")
        self.assertEqual(fetch.url, AIA_URL)
        self.assertEqual(fetch.issuer, self.maker.ca)

    def test_ocsp_responder_overrides_the_url_and_implies_fetching(self):
        spec = self.load('ocsp_responder = "http://127.0.0.1:8888/"').tls[
            "default"
        ].certificates[0]
        self.assertTrue(spec.ocsp_fetch)
        fetch = self.fetch('ocsp_responder = "http://127.0.0.1:8888/"')
        self.assertEqual(fetch.url, "http://127.0.0.1:8888/")

    def test_fetching_is_off_by_default(self):
        self.assertIsNone(self.fetch('names = ["localhost"]'))
        self.assertIsNone(self.fetch("ocsp_fetch = false"))

    def test_key_problems(self):
        cases = [
            ('ocsp_fetch = "yes"', 'ocsp_fetch: expected true or false, got "yes"'),
            (
                'ocsp_responder = "ldap://ocsp.example.test/"',
                "ocsp_responder: expected an http:// or https:// URL with a host, "
                'got "ldap://ocsp.example.test/"',
            ),
            (
                'ocsp_fetch = false, ocsp_responder = "http://127.0.0.1:8888/"',
                "ocsp_responder: is never asked since ocsp_fetch = false; remove "
                "one of the two",
            ),
        ]
        for entry, problem in cases:
            self.assertEqual(
                self.problems(entry), ["tls.default.certificates[0]." + problem]
            )

    def test_certificate_without_a_responder(self):
        self.maker.write("localhost", ["localhost"])
        self.assertEqual(
            self.problems("ocsp_fetch = true"),
            [
                "tls.default.certificates[0].ocsp_fetch: localhost.pem names no "
                "OCSP responder (no OCSP URL in its Authority Information "
                "Access); set ocsp_responder"
            ],
        )

    def test_chain_without_the_issuer(self):
        self.cert.write_bytes(pem(self.leaf))
        expected = (
            "localhost.pem does not hold the certificate that issued its leaf; "
            "an OCSP request names it: put the intermediate after the leaf (a "
            "full chain)"
        )
        self.assertEqual(
            self.problems("ocsp_fetch = true"),
            ["tls.default.certificates[0].ocsp_fetch: " + expected],
        )
        self.assertEqual(
            self.problems('ocsp_responder = "http://127.0.0.1:8888/"'),
            ["tls.default.certificates[0].ocsp_responder: " + expected],
        )


class Responder:
    """
    Asks nothing: records each question, with the L{Deferred} the test
    fires with an answer or a failure.
    """

    def __init__(self) -> None:
        self.questions: List[Tuple[str, bytes, Deferred]] = []

    def __call__(self, url: str, request: bytes) -> Deferred:
        d = Deferred()
        self.questions.append((url, request, d))
        return d

    def answer(self, der: bytes) -> None:
        self.questions[-1][2].callback(der)

    def fail(self, message: str) -> None:
        self.questions[-1][2].errback(OCSPError(message))


class StaplerTests(Certificates):
    """
    An L{OCSPStapler} on a L{Clock} set to the present (the certificates
    and responses are made at the present), for a store whose localhost
    certificate fetches its responses.
    """

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        # Whole seconds, as the responses' times are.
        self.clock.advance(int(time.time()))
        self.responder = Responder()
        self.stapler = OCSPStapler(self.clock, self.responder)
        self.store = self.make_store()
        self.warnings = logged_warnings(self)

    def make_store(self, **options) -> CertificateStore:
        certificate = TLSCertificate(str(self.cert), str(self.key), ocsp_fetch=True, **options)
        return CertificateStore(TLS("default", (certificate,)), self.clock)

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(
            self.clock.seconds(), datetime.timezone.utc
        )

    def response(self, **options) -> bytes:
        options.setdefault("this_update", self.now())
        return ocsp_response(self.leaf, self.maker.ca, self.maker.ca_key, **options)

    def stapled(self, store=None) -> bytes:
        """
        What the store's localhost context staples now.
        """
        slot = (store or self.store).fetching()[0].slot
        return slot.staple(None, None)

    def start(self) -> None:
        self.stapler.watch([self.store])
        self.stapler.startService()
        self.addCleanup(self.stapler.stopService)

    def next_refresh(self) -> float:
        [call] = self.clock.getDelayedCalls()
        return call.getTime() - self.clock.seconds()

    def test_responder_is_asked_at_start_and_the_good_answer_stapled(self):
        self.stapler.watch([self.store])
        self.assertEqual(self.responder.questions, [])
        self.assertEqual(self.stapled(), b"")
        self.stapler.startService()
        self.addCleanup(self.stapler.stopService)
        [(url, request, _)] = self.responder.questions
        self.assertEqual(url, AIA_URL)
        self.assertEqual(request, request_for(self.leaf, self.maker.ca))
        good = self.response()
        self.responder.answer(good)
        self.assertEqual(self.stapled(), good)

    def test_answer_is_refreshed_halfway_through_its_validity(self):
        self.start()
        self.responder.answer(self.response(lifetime=datetime.timedelta(hours=2)))
        self.assertEqual(self.next_refresh(), 3600.0)
        self.clock.advance(3599)
        self.assertEqual(len(self.responder.questions), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.responder.questions), 2)
        newer = self.response(lifetime=datetime.timedelta(hours=2))
        self.responder.answer(newer)
        self.assertEqual(self.stapled(), newer)

    def test_failure_keeps_the_previous_answer_and_retries_with_backoff(self):
        self.start()
        good = self.response(lifetime=datetime.timedelta(hours=2))
        self.responder.answer(good)
        self.clock.advance(3600)
        self.responder.fail("the responder answered HTTP 503")
        self.assertEqual(self.stapled(), good)
        self.assertEqual(self.next_refresh(), 60.0)
        self.clock.advance(60)
        self.responder.fail("the responder answered HTTP 503")
        self.assertEqual(self.next_refresh(), 120.0)
        self.assertEqual(len(self.warnings), 2)
        self.assertIn(
            "tls.default.certificates[0]: OCSP responder %s: the responder "
            "answered HTTP 503; the previous response stays stapled until" % (AIA_URL,),
            self.warnings[0],
        )
        self.assertTrue(self.warnings[0].endswith("asking again in 60 s"))

    def test_answer_that_expires_is_no_longer_stapled(self):
        self.start()
        self.responder.answer(self.response(lifetime=datetime.timedelta(hours=2)))
        self.clock.advance(3600)
        self.responder.fail("no answer within 10 s")
        self.clock.advance(3600)
        self.assertEqual(self.stapled(), b"")

    def test_revoked_or_unknown_answer_is_not_stapled(self):
        self.start()
        good = self.response(lifetime=datetime.timedelta(hours=2))
        self.responder.answer(good)
        self.clock.advance(3600)
        self.responder.answer(self.response(status=REVOKED))
        self.assertEqual(self.stapled(), good)
        self.assertIn("the responder says the certificate was revoked on", self.warnings[0])
        self.assertEqual(self.next_refresh(), 60.0)
        self.clock.advance(60)
        self.responder.answer(self.response(status=UNKNOWN))
        self.assertEqual(self.stapled(), good)
        self.assertIn("does not know the certificate", self.warnings[1])

    def test_invalid_answer_is_not_stapled(self):
        self.start()
        self.responder.answer(b"<html>busy</html>")
        self.assertEqual(self.stapled(), b"")
        self.assertIn(
            "OCSP responder %s: the answer is not a DER OCSP response; nothing "
            "fetched is stapled yet" % (AIA_URL,),
            self.warnings[0],
        )

    def test_reload_keeps_the_answer_of_a_certificate_still_served(self):
        self.start()
        good = self.response()
        self.responder.answer(good)
        refresh = self.clock.getDelayedCalls()[0].getTime()
        self.assertEqual(self.store.reload(), [])
        self.stapler.watch([self.store])
        self.assertEqual(self.stapled(), good)
        # A whole new runtime's store, as a full reload makes.
        store = self.make_store()
        self.stapler.watch([store])
        self.assertEqual(self.stapled(store), good)
        self.assertEqual(len(self.responder.questions), 1)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [refresh])

    def test_store_reloaded_on_its_own_keeps_the_fetched_answer(self):
        """
        A store that reads its files again by itself (the watch of its
        files, SIGHUP's certificate reload) gets the fetched answer into
        its new contexts without anyone telling the stapler.
        """
        self.start()
        good = self.response()
        self.responder.answer(good)
        self.assertEqual(self.store.reload(), [])
        self.assertEqual(self.stapled(), good)
        self.assertEqual(len(self.responder.questions), 1)

    def test_store_of_a_replaced_configuration_is_no_longer_followed(self):
        self.start()
        self.responder.answer(self.response())
        store = self.make_store()
        self.stapler.watch([store])
        self.store.reload()
        self.assertEqual(self.stapled(self.store), b"")

    def test_certificate_no_longer_served_is_no_longer_refreshed(self):
        self.start()
        self.responder.answer(self.response())
        self.stapler.watch([])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_question_in_flight_is_cancelled_quietly(self):
        self.start()
        self.stapler.watch([])
        self.assertTrue(self.responder.questions[0][2].called)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.warnings, [])
        self.stapler.watch([self.store])
        self.stapler.stopService()
        self.assertEqual(len(self.responder.questions), 2)
        self.assertTrue(self.responder.questions[1][2].called)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_new_certificate_is_asked_for_at_once_while_running(self):
        self.stapler.startService()
        self.addCleanup(self.stapler.stopService)
        self.stapler.watch([self.store])
        self.assertEqual(len(self.responder.questions), 1)

    def test_responder_url_change_is_a_new_certificate_to_ask_for(self):
        self.start()
        store = self.make_store(ocsp_responder="http://127.0.0.1:8888/")
        self.stapler.watch([store])
        self.assertTrue(self.responder.questions[0][2].called)
        self.assertEqual(self.responder.questions[1][0], "http://127.0.0.1:8888/")

    def test_file_response_is_stapled_until_a_newer_one_is_fetched(self):
        yesterday = self.now() - datetime.timedelta(days=1)
        on_file = self.directory / "localhost.der"
        on_file.write_bytes(self.response(this_update=yesterday))
        self.store = self.make_store(ocsp=str(on_file))
        self.assertEqual(self.stapled(), on_file.read_bytes())
        self.start()
        fetched = self.response()
        self.responder.answer(fetched)
        self.assertEqual(self.stapled(), fetched)
        # A reload reads the older file again; the fetched one stays.
        self.store.reload()
        self.stapler.watch([self.store])
        self.assertEqual(self.stapled(), fetched)


class StapleSlotTests(TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(int(time.time()))
        self.slot = StapleSlot(self.clock.seconds)
        self.now = datetime.datetime.fromtimestamp(
            self.clock.seconds(), datetime.timezone.utc
        )

    def offer(self, response: bytes, this_update_hours: int, lifetime_hours: int):
        this_update = self.now + datetime.timedelta(hours=this_update_hours)
        self.slot.offer(
            response, this_update, this_update + datetime.timedelta(hours=lifetime_hours)
        )

    def test_newer_response_wins_whichever_comes_last(self):
        self.offer(b"newer", -1, 4)
        self.offer(b"older", -2, 4)
        self.assertEqual(self.slot.staple(None, None), b"newer")
        self.offer(b"newest", 0, 4)
        self.assertEqual(self.slot.staple(None, None), b"newest")

    def test_expired_response_is_never_stapled(self):
        self.offer(b"valid", -2, 4)
        self.offer(b"expired", -1, 1)
        self.assertEqual(self.slot.staple(None, None), b"valid")
        self.clock.advance(2 * 3600)
        self.assertEqual(self.slot.staple(None, None), b"")
        self.offer(b"older but valid", -3, 6)
        self.assertEqual(self.slot.staple(None, None), b"older but valid")


class ResponderClientTests(TestCase):
    def test_responder_that_does_not_answer_in_time(self):
        reactor = MemoryReactorClock()
        d = ResponderClient(reactor, timeout=10).ask(AIA_URL, b"request")
        [(_, port, _, timeout, _)] = reactor.tcpClients
        self.assertEqual((port, timeout), (80, 10))
        reactor.advance(10)
        self.assertEqual(str(self.failureResultOf(d, OCSPError).value), "no answer within 10 s")
