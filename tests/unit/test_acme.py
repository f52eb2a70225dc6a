"""
Tests of C{[tls.NAME] acme} without a network: its configuration, the
renewal schedule and backoff, the manager's timers on a L{Clock}, the
store serving the stored certificate (or a placeholder), and the answers
to HTTP-01 and TLS-ALPN-01 challenges read from the storage.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat

from cryptography import x509
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from txrevproxy.app.certificates import CertificateManagers
from txrevproxy.config.model import ACME, TLS, ServerSettings, TLSCertificate
from txrevproxy.routing.acme_challenge import AcmeChallenges
from txrevproxy.routing.redirects import HttpsRedirect
from txrevproxy.tls.acme import manager as manager_module
from txrevproxy.tls.acme.answers import (
    HTTP01,
    TLS_ALPN01,
    Responder,
    http01_answer,
    tls_alpn01_answer,
)
from txrevproxy.tls.acme.certificates import ACME_IDENTIFIER, new_key
from txrevproxy.tls.acme.client import AcmeClient, AcmeProblem
from txrevproxy.tls.acme.manager import CertificateManager, challenge_kind
from txrevproxy.tls.acme.schedule import FIRST_RETRY, LONGEST_RETRY, Backoff, renewal_time
from txrevproxy.tls.acme.storage import Storage
from txrevproxy.tls.devcerts import key_pem, make_ca, make_leaf, pem
from txrevproxy.tls.store import CertificateStore

from ..support.channels import connect
from ..support.configs import parse, problems
from ..support.processes import temporary_directory
from .test_tls_config import LISTENERS

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

BASE = LISTENERS + "\n[tls.default]\n"


def leaf_for(names, issued=NOW, days=90):
    ca, ca_key = make_ca(now=issued)
    return make_leaf(ca, ca_key, names, now=issued, days=days)


class ConfigTests(TestCase):
    def test_acme_alone_is_a_certificate_source(self):
        config = parse(
            BASE + 'acme = { email = "a@example.test", directory = "https://ca.test/dir", '
            'names = ["example.test"] }\n'
        )
        acme = config.tls["default"].acme
        self.assertEqual(acme.names, ("example.test",))
        self.assertEqual(acme.challenge, None)
        self.assertEqual(acme.renew_before, None)

    def test_names_default_to_those_of_the_certificates(self):
        directory = temporary_directory(self)
        leaf, key = leaf_for(["a.test"], issued=datetime.datetime.now(datetime.timezone.utc))
        (directory / "c.pem").write_bytes(pem(leaf))
        (directory / "k.pem").write_bytes(key_pem(key))
        config = parse(
            BASE
            + 'acme = { email = "a@example.test", directory = "https://ca.test/dir" }\n'
            'certificates = [{ names = ["a.test", "b.test"], cert = "%s", key = "%s" }]\n'
            % (directory / "c.pem", directory / "k.pem")
        )
        self.assertEqual(config.tls["default"].acme.names, ("a.test", "b.test"))

    def test_problems_name_their_key(self):
        found = problems(
            BASE + 'acme = { email = "nobody", directory = "http://ca.test/dir", '
            'challenge = "dns-01", renew_before = "soon" }\n'
        )
        paths = sorted(problem.split(":")[0] for problem in found)
        self.assertEqual(
            paths,
            [
                "tls.default.acme.challenge",
                "tls.default.acme.directory",
                "tls.default.acme.email",
                "tls.default.acme.renew_before",
            ],
        )

    def test_without_names_anywhere_names_are_required(self):
        found = problems(
            BASE + 'acme = { email = "a@example.test", directory = "https://ca.test/dir" }\n'
        )
        self.assertEqual([p.split(":")[0] for p in found], ["tls.default.acme.names"])

    def test_a_wildcard_is_refused(self):
        found = problems(
            BASE + 'acme = { email = "a@example.test", directory = "https://ca.test/dir", '
            'names = ["*.example.test"] }\n'
        )
        self.assertIn("DNS-01", found[0])

    def test_a_challenge_without_a_listener_to_answer_it_is_a_problem(self):
        text = BASE + (
            'acme = { email = "a@example.test", directory = "https://ca.test/dir", '
            'names = ["example.test"], challenge = "http-01" }\n'
        )
        (found,) = problems(text)
        self.assertTrue(found.startswith("tls.default.acme.challenge: http-01 "), found)
        other = text.replace('tls = "default"', "").replace("http-01", "tls-alpn-01")
        self.assertIn(
            'tls.default.acme.challenge: tls-alpn-01 is answered on the listeners '
            'of this table (port 443 for a public CA), and none has tls = "default"',
            problems(other),
        )

    def test_challenge_is_http01_with_a_plain_listener_else_tls_alpn01(self):
        text = BASE + (
            'acme = { email = "a@example.test", directory = "https://ca.test/dir", '
            'names = ["example.test"] }\n'
        )
        config = parse(text)
        self.assertEqual(challenge_kind(config, config.tls["default"]), TLS_ALPN01)
        config = parse(text + '[listeners.web]\nendpoint = "tcp:8080"\n')
        self.assertEqual(challenge_kind(config, config.tls["default"]), HTTP01)


class ScheduleTests(TestCase):
    def test_renewal_at_two_thirds_of_the_lifetime(self):
        leaf, _ = leaf_for(["a.test"], days=90)
        start = leaf.not_valid_before_utc.timestamp()
        end = leaf.not_valid_after_utc.timestamp()
        self.assertAlmostEqual(renewal_time(leaf, None), start + (end - start) * 2 / 3)

    def test_renew_before_counts_from_the_end_at_most_half_the_lifetime(self):
        leaf, _ = leaf_for(["a.test"], days=90)
        start = leaf.not_valid_before_utc.timestamp()
        end = leaf.not_valid_after_utc.timestamp()
        self.assertEqual(renewal_time(leaf, 86400.0), end - 86400.0)
        self.assertEqual(renewal_time(leaf, 365 * 86400.0), start + (end - start) / 2)

    def test_backoff_doubles_up_to_the_longest_and_a_success_resets_it(self):
        backoff = Backoff()
        waits = [backoff.failed() for _ in range(12)]
        self.assertEqual(waits[:3], [FIRST_RETRY, 2 * FIRST_RETRY, 4 * FIRST_RETRY])
        self.assertEqual(waits[-1], LONGEST_RETRY)
        self.assertEqual(waits, sorted(waits))
        backoff.succeeded()
        self.assertEqual(backoff.failed(), FIRST_RETRY)


class ManagerTests(TestCase):
    """
    The manager's timers, with the order itself replaced by a Deferred the
    test fires.
    """

    def setUp(self):
        self.directory = str(temporary_directory(self))
        self.acme = ACME(
            "a@example.test", "https://ca.test/dir", ("a.test",), self.directory
        )
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        self.renewed = []
        self.orders = []
        self.manager = CertificateManager(
            "main", self.acme, HTTP01, self.clock, lambda: self.renewed.append(1)
        )
        self.manager._obtain = self._obtain

    def _obtain(self):
        d = Deferred()
        self.orders.append(d)
        return d

    def store(self, issued, days):
        leaf, key = leaf_for(["a.test"], issued=issued, days=days)
        Storage.of(self.acme).save_certificate(pem(leaf), key_pem(key))
        return leaf

    def test_a_missing_certificate_is_ordered_at_once(self):
        self.manager.startService()
        self.clock.advance(0)
        self.assertEqual(len(self.orders), 1)

    def test_a_valid_stored_certificate_is_renewed_at_two_thirds(self):
        # Read with the real time: issued now, it is valid.
        issued = datetime.datetime.now(datetime.timezone.utc)
        self.clock = Clock()
        self.clock.advance(issued.timestamp())
        self.manager._reactor = self.clock
        leaf = self.store(issued, 90)
        self.manager.startService()
        self.assertEqual(self.manager.next_attempt, renewal_time(leaf, None))
        self.clock.advance(renewal_time(leaf, None) - self.clock.seconds() - 1)
        self.assertEqual(self.orders, [])
        self.clock.advance(1)
        self.assertEqual(len(self.orders), 1)

    def test_failures_back_off_and_a_success_reloads_and_reschedules(self):
        self.manager.startService()
        self.clock.advance(0)
        self.orders[-1].errback(RuntimeError("the CA is down"))
        self.assertEqual(self.manager.next_attempt, self.clock.seconds() + FIRST_RETRY)
        self.clock.advance(FIRST_RETRY)
        self.orders[-1].errback(RuntimeError("the CA is down"))
        self.assertEqual(self.manager.next_attempt, self.clock.seconds() + 2 * FIRST_RETRY)
        self.clock.advance(2 * FIRST_RETRY)
        self.assertEqual(len(self.orders), 3)
        issued = datetime.datetime.now(datetime.timezone.utc)
        leaf = self.store(issued, 90)
        self.orders[-1].callback(None)
        self.assertEqual(self.renewed, [1])
        self.assertEqual(self.manager.backoff.failures, 0)
        self.assertEqual(self.manager.next_attempt, renewal_time(leaf, None))

    def test_stopping_cancels_the_timer_and_the_order(self):
        self.manager.startService()
        self.clock.advance(0)
        self.manager.stopService()
        self.assertTrue(self.orders[0].called)
        self.assertEqual(self.manager.next_attempt, None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_account_key_is_made_once_and_private(self):
        storage = Storage.of(self.acme)
        first = manager_module.account_key(storage)
        second = manager_module.account_key(storage)
        self.assertEqual(key_pem(first), key_pem(second))
        self.assertEqual(stat.S_IMODE(os.stat(storage.account_key).st_mode), 0o600)


class StoreTests(TestCase):
    def setUp(self):
        self.directory = str(temporary_directory(self))
        self.acme = ACME(
            "a@example.test", "https://ca.test/dir", ("a.test",), self.directory
        )

    def test_without_a_certificate_a_placeholder_is_served(self):
        store = CertificateStore(TLS("main", acme=self.acme))
        ((origin, names, _),) = store.expiries()
        self.assertEqual((origin, names), ("acme", ("a.test",)))

    def test_the_stored_certificate_wins_over_the_listed_one_for_its_names(self):
        directory = temporary_directory(self)
        listed, listed_key = leaf_for(["a.test"], issued=datetime.datetime.now(datetime.timezone.utc))
        (directory / "c.pem").write_bytes(pem(listed))
        (directory / "k.pem").write_bytes(key_pem(listed_key))
        block = TLS(
            "main",
            certificates=(TLSCertificate(str(directory / "c.pem"), str(directory / "k.pem")),),
            acme=self.acme,
        )
        store = CertificateStore(block)
        self.assertEqual([e[0] for e in store.expiries()], ["certificates[0]"])
        stored, key = leaf_for(["a.test"], issued=datetime.datetime.now(datetime.timezone.utc))
        Storage.of(self.acme).save_certificate(pem(stored), key_pem(key))
        self.assertEqual(store.reload(), [])
        self.assertEqual(
            [e[0] for e in store.expiries()], ["acme", "certificates[0]"]
        )
        acme_context = store._served.certificates["acme"].context
        self.assertIs(store.context_for("a.test"), acme_context)
        self.assertIs(store.context_for("A.test."), acme_context)


class AnswerTests(TestCase):
    def setUp(self):
        self.storage = Storage(str(temporary_directory(self)), ("a.test",))
        self.responder = Responder(self.storage)

    def test_http01_answers_a_pending_token_only(self):
        self.responder.put(HTTP01, "a.test", "tok-en_1", "tok-en_1.thumb")
        path = b"/.well-known/acme-challenge/tok-en_1"
        self.assertEqual(http01_answer([self.storage], path), b"tok-en_1.thumb")
        self.assertIsNone(http01_answer([self.storage], b"/.well-known/acme-challenge/x"))
        self.assertIsNone(http01_answer([self.storage], b"/.well-known/acme-challenge/../k"))
        self.assertIsNone(http01_answer([self.storage], b"/tok-en_1"))
        self.responder.remove(HTTP01, "a.test", "tok-en_1")
        self.assertIsNone(http01_answer([self.storage], path))

    def test_tls_alpn01_certificate_carries_the_key_authorization_digest(self):
        self.responder.put(TLS_ALPN01, "a.test", "token", "token.thumb")
        certificate, key = tls_alpn01_answer([self.storage], "A.test")
        extension = certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER)
        self.assertTrue(extension.critical)
        digest = hashlib.sha256(b"token.thumb").digest()
        self.assertEqual(extension.value.value, b"\x04\x20" + digest)
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
        self.assertEqual(names, ["a.test"])
        self.responder.remove(TLS_ALPN01, "a.test", "token")
        self.assertIsNone(tls_alpn01_answer([self.storage], "a.test"))


class ManagersTests(TestCase):
    """
    The managers of a process across reloads.
    """

    TEXT = BASE + (
        'acme = { email = "a@example.test", directory = "https://ca.test/dir", '
        'names = ["example.test"], storage = "%s"%s }\n'
    )

    def setUp(self):
        self.directory = temporary_directory(self)
        self.clock = Clock()
        self.managers = CertificateManagers(self.clock, lambda table: None)
        self.addCleanup(self.managers.stopService)

    def config(self, extra=""):
        return parse(self.TEXT % (self.directory, extra))

    def test_a_reload_that_keeps_acme_keeps_the_manager_and_its_timer(self):
        self.managers.configure(self.config())
        self.managers.startService()
        manager = self.managers.managers["default"]
        due = manager.next_attempt
        self.assertIsNotNone(due)
        self.managers.configure(self.config())
        self.assertIs(self.managers.managers["default"], manager)
        self.assertEqual(manager.next_attempt, due)
        self.assertTrue(manager.running)

    def test_a_reload_that_changes_acme_replaces_the_manager(self):
        self.managers.configure(self.config())
        self.managers.startService()
        old = self.managers.managers["default"]
        self.managers.configure(self.config(', renew_before = "10d"'))
        new = self.managers.managers["default"]
        self.assertIsNot(new, old)
        self.assertFalse(old.running)
        self.assertTrue(new.running)

    def test_a_reload_that_removes_acme_stops_the_manager(self):
        self.managers.configure(self.config())
        self.managers.startService()
        old = self.managers.managers["default"]
        directory = temporary_directory(self)
        leaf, key = leaf_for(["a.test"], issued=datetime.datetime.now(datetime.timezone.utc))
        (directory / "c.pem").write_bytes(pem(leaf))
        (directory / "k.pem").write_bytes(key_pem(key))
        self.managers.configure(
            parse(
                BASE
                + 'certificates = [{ cert = "%s", key = "%s" }]\n'
                % (directory / "c.pem", directory / "k.pem")
            )
        )
        self.assertEqual(self.managers.managers, {})
        self.assertFalse(old.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ChallengeResourceTests(TestCase):
    """
    L{AcmeChallenges} in front of a listener's root (here its redirect to
    HTTPS), over a real channel.
    """

    def setUp(self):
        self.storage = Storage(str(temporary_directory(self)), ("a.test",))
        Responder(self.storage).put(HTTP01, "a.test", "tok", "tok.thumb")
        root = AcmeChallenges([self.storage], HttpsRedirect(lambda: 443))
        _, _, self.channel, self.transport = connect(ServerSettings(), root)

    def get(self, path: bytes) -> bytes:
        self.channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
        return self.transport.value()

    def test_a_pending_token_is_answered_before_the_redirect(self):
        response = self.get(b"/.well-known/acme-challenge/tok")
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertTrue(response.endswith(b"\r\n\r\ntok.thumb"), response)

    def test_other_requests_reach_the_root(self):
        response = self.get(b"/.well-known/acme-challenge/unknown")
        self.assertTrue(response.startswith(b"HTTP/1.1 308 "), response)
        self.assertIn(b"Location: https://a.test/.well-known/acme-challenge/unknown", response)


class FakeResponse:
    def __init__(self, code, body, headers=()):
        self.code = code
        self._body = body
        self.headers = Headers({b"replay-nonce": [b"bm9uY2U"]})
        for name, value in headers:
            self.headers.addRawHeader(name, value)

    def content(self):
        return succeed(self._body)


class FakeCA:
    """
    The HTTP client of an L{AcmeClient}: answers each request with the
    next of C{answers} and records the requests.
    """

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        return succeed(self.answers.pop(0))


DIRECTORY = FakeResponse(
    200,
    b'{"newNonce": "https://ca.test/nonce", "newAccount": "https://ca.test/acct",'
    b' "newOrder": "https://ca.test/order"}',
)


class ClientTests(TestCase):
    def client(self, *answers):
        # Every answer carries a fresh nonce, the directory's too.
        self.ca = FakeCA(DIRECTORY, *answers)
        return AcmeClient(self.ca, "https://ca.test/dir", new_key(), Clock())

    def test_a_bad_nonce_is_retried_once_with_a_fresh_one(self):
        client = self.client(
            FakeResponse(400, b'{"type": "urn:ietf:params:acme:error:badNonce"}'),
            FakeResponse(201, b"{}", [(b"location", b"https://ca.test/acct/1")]),
        )
        account = self.successResultOf(ensureDeferred(client.register("a@example.test")))
        self.assertEqual(account, "https://ca.test/acct/1")
        posts = [each for each in self.ca.requests if each[0] == "POST"]
        self.assertEqual(len(posts), 2)
        self.assertEqual(posts[0][2]["headers"][b"Content-Type"], [b"application/jose+json"])

    def test_a_refusal_carries_the_problem_document(self):
        problem = (
            b'{"type": "urn:ietf:params:acme:error:rejectedIdentifier",'
            b' "detail": "example.test is forbidden"}'
        )
        client = self.client(FakeResponse(400, problem))
        failure = self.failureResultOf(
            ensureDeferred(client.register("a@example.test")), AcmeProblem
        )
        self.assertIn("rejectedIdentifier", str(failure.value))
        self.assertIn("example.test is forbidden", str(failure.value))

    def test_key_authorization_is_the_token_and_the_key_thumbprint(self):
        client = self.client()
        token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
        authorization = client.key_authorization(token)
        thumbprint = authorization.split(".", 1)[1]
        self.assertTrue(authorization.startswith(token + "."))
        self.assertEqual(len(thumbprint), 43)
