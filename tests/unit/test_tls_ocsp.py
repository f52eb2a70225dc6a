"""
The pure side of fetched OCSP stapling (L{txrevproxy.tls.ocsp}): the
request, the responder's URL, the check of an answer and the schedule.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from twisted.trial.unittest import TestCase

from txrevproxy.tls import ocsp
from txrevproxy.tls.devcerts import make_ca, make_leaf

from ..support.ocsp_responses import (
    REVOKED,
    UNKNOWN,
    ocsp_response,
    responder_certificate,
    unsuccessful,
    utc_now,
)

URL = "http://ocsp.example.test/"


class RequestTests(TestCase):
    def setUp(self):
        self.ca, self.ca_key = make_ca()
        self.leaf, _ = make_leaf(self.ca, self.ca_key, ["localhost"], ocsp_url=URL)

    def test_request_names_the_leaf_by_sha1_cert_id_without_nonce(self):
        request = x509_ocsp.load_der_ocsp_request(ocsp.request_for(self.leaf, self.ca))
        expected = (
            x509_ocsp.OCSPRequestBuilder()
            .add_certificate(self.leaf, self.ca, hashes.SHA1())
            .build()
        )
        self.assertEqual(request.serial_number, self.leaf.serial_number)
        self.assertIsInstance(request.hash_algorithm, hashes.SHA1)
        self.assertEqual(request.issuer_key_hash, expected.issuer_key_hash)
        self.assertEqual(request.issuer_name_hash, expected.issuer_name_hash)
        self.assertEqual(len(request.extensions), 0)

    def test_responder_url_is_read_from_authority_information_access(self):
        self.assertEqual(ocsp.responder_url(self.leaf), URL)

    def test_certificate_without_ocsp_url_has_no_responder(self):
        plain, _ = make_leaf(self.ca, self.ca_key, ["localhost"])
        self.assertIsNone(ocsp.responder_url(plain))
        key = ec.generate_private_key(ec.SECP256R1())
        only_ca_issuers = (
            x509.CertificateBuilder()
            .subject_name(plain.subject)
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(plain.not_valid_before_utc)
            .not_valid_after(plain.not_valid_after_utc)
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier("http://ca.example.test/ca.der"),
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier("ldap://ocsp.example.test/"),
                        ),
                    ]
                ),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.assertIsNone(ocsp.responder_url(only_ca_issuers))

    def test_issuer_is_found_in_the_chain(self):
        other, _ = make_ca()
        self.assertIs(ocsp.issuer_of((self.leaf, other, self.ca)), self.ca)
        self.assertIsNone(ocsp.issuer_of((self.leaf,)))
        self.assertIsNone(ocsp.issuer_of((self.leaf, other)))


class CheckTests(TestCase):
    """
    L{ocsp.check_answer} at a fixed moment, C{self.now}.
    """

    def setUp(self):
        self.now = utc_now()
        self.ca, self.ca_key = make_ca()
        self.leaf, _ = make_leaf(self.ca, self.ca_key, ["localhost"], ocsp_url=URL)

    def check(self, der):
        return ocsp.check_answer(der, self.leaf, self.ca, self.now)

    def refused(self, der) -> str:
        return str(self.assertRaises(ocsp.OCSPError, self.check, der))

    def test_good_answer_signed_by_the_issuer(self):
        der = ocsp_response(self.leaf, self.ca, self.ca_key, this_update=self.now)
        answer = self.check(der)
        self.assertTrue(answer.good)
        self.assertEqual(answer.der, der)
        self.assertEqual(answer.this_update, self.now)
        self.assertEqual(answer.next_update, self.now + datetime.timedelta(days=7))

    def test_good_answer_signed_by_a_delegated_responder(self):
        responder, key = responder_certificate(self.ca, self.ca_key)
        der = ocsp_response(self.leaf, self.ca, key, responder=responder)
        self.assertTrue(self.check(der).good)

    def test_answer_hashed_with_sha256_is_recognised(self):
        der = ocsp_response(self.leaf, self.ca, self.ca_key, algorithm=hashes.SHA256())
        self.assertTrue(self.check(der).good)

    def test_revoked_and_unknown_answers_say_so(self):
        revoked = self.check(ocsp_response(self.leaf, self.ca, self.ca_key, status=REVOKED))
        self.assertEqual(revoked.status, REVOKED)
        self.assertFalse(revoked.good)
        self.assertIsNotNone(revoked.revocation_time)
        unknown = self.check(ocsp_response(self.leaf, self.ca, self.ca_key, status=UNKNOWN))
        self.assertEqual(unknown.status, UNKNOWN)
        self.assertFalse(unknown.good)

    def test_not_an_ocsp_response(self):
        self.assertEqual(self.refused(b"<html>"), "the answer is not a DER OCSP response")

    def test_unsuccessful_response(self):
        self.assertEqual(
            self.refused(unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER)),
            "the responder answered try_later, not a certificate status",
        )

    def test_answer_about_another_certificate(self):
        other, _ = make_leaf(self.ca, self.ca_key, ["other.test"])
        self.assertEqual(
            self.refused(ocsp_response(other, self.ca, self.ca_key)),
            "the response is not about this certificate (serial %x)"
            % (self.leaf.serial_number,),
        )

    def test_answer_about_the_same_serial_from_another_issuer(self):
        stranger, stranger_key = make_ca()
        twin = (
            x509.CertificateBuilder()
            .subject_name(self.leaf.subject)
            .issuer_name(stranger.subject)
            .public_key(self.leaf.public_key())
            .serial_number(self.leaf.serial_number)
            .not_valid_before(self.leaf.not_valid_before_utc)
            .not_valid_after(self.leaf.not_valid_after_utc)
            .sign(stranger_key, hashes.SHA256())
        )
        message = self.refused(ocsp_response(twin, stranger, stranger_key))
        self.assertIn("not about this certificate", message)

    def test_answer_signed_by_a_stranger(self):
        stranger, stranger_key = make_ca()
        self.assertEqual(
            self.refused(
                ocsp_response(self.leaf, self.ca, stranger_key, signer=stranger)
            ),
            "the response is not signed by the certificate's issuer",
        )

    def test_delegated_responder_without_ocsp_signing(self):
        responder, key = responder_certificate(self.ca, self.ca_key, ocsp_signing=False)
        self.assertEqual(
            self.refused(ocsp_response(self.leaf, self.ca, key, responder=responder)),
            "the response's responder certificate cannot sign it: it is not for "
            "OCSP signing (no OCSPSigning extended key usage)",
        )

    def test_delegated_responder_of_another_issuer(self):
        stranger, stranger_key = make_ca()
        responder, key = responder_certificate(stranger, stranger_key)
        self.assertEqual(
            self.refused(ocsp_response(self.leaf, self.ca, key, responder=responder)),
            "the response's responder certificate cannot sign it: it was not "
            "issued by the certificate's issuer",
        )

    def test_expired_delegated_responder(self):
        responder, key = responder_certificate(
            self.ca, self.ca_key, now=self.now - datetime.timedelta(days=60)
        )
        message = self.refused(ocsp_response(self.leaf, self.ca, key, responder=responder))
        self.assertIn("responder certificate cannot sign it: it is valid from", message)

    def test_delegated_responder_that_did_not_sign(self):
        responder, _ = responder_certificate(self.ca, self.ca_key)
        other, other_key = responder_certificate(self.ca, self.ca_key)
        self.assertEqual(
            self.refused(
                ocsp_response(
                    self.leaf, self.ca, other_key, responder=responder, signer=other
                )
            ),
            "the response's responder certificate cannot sign it: its signature "
            "does not match its certificate",
        )

    def test_this_update_in_the_future(self):
        later = self.now + datetime.timedelta(hours=1)
        self.assertEqual(
            self.refused(ocsp_response(self.leaf, self.ca, self.ca_key, this_update=later)),
            "the response's thisUpdate, %s, is in the future; is the clock right?"
            % (later.strftime("%Y-%m-%d %H:%M:%S UTC"),),
        )

    def test_small_clock_skew_is_allowed(self):
        soon = self.now + datetime.timedelta(minutes=2)
        der = ocsp_response(self.leaf, self.ca, self.ca_key, this_update=soon)
        self.assertTrue(self.check(der).good)

    def test_expired_answer(self):
        old = self.now - datetime.timedelta(days=10)
        self.assertEqual(
            self.refused(ocsp_response(self.leaf, self.ca, self.ca_key, this_update=old)),
            "the response expired on %s"
            % ((old + datetime.timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S UTC"),),
        )

    def test_answer_without_next_update_does_not_expire(self):
        old = self.now - datetime.timedelta(days=10)
        der = ocsp_response(self.leaf, self.ca, self.ca_key, this_update=old, lifetime=None)
        self.assertIsNone(self.check(der).next_update)


class ScheduleTests(TestCase):
    def answer(self, this_update, lifetime):
        return ocsp.Answer(
            b"",
            x509_ocsp.OCSPCertStatus.GOOD,
            this_update,
            None if lifetime is None else this_update + lifetime,
        )

    def test_refresh_falls_halfway_through_the_validity(self):
        now = utc_now()
        answer = self.answer(now - datetime.timedelta(hours=1), datetime.timedelta(hours=4))
        self.assertEqual(ocsp.refresh_delay(answer, now), 3600.0)

    def test_refresh_is_not_sooner_than_the_floor(self):
        now = utc_now()
        answer = self.answer(now, datetime.timedelta(seconds=30))
        self.assertEqual(ocsp.refresh_delay(answer, now), ocsp.MIN_REFRESH)
        past_halfway = self.answer(now - datetime.timedelta(days=4), datetime.timedelta(days=7))
        self.assertEqual(ocsp.refresh_delay(past_halfway, now), ocsp.MIN_REFRESH)

    def test_refresh_is_not_later_than_the_ceiling(self):
        now = utc_now()
        answer = self.answer(now, datetime.timedelta(days=7))
        self.assertEqual(ocsp.refresh_delay(answer, now), ocsp.MAX_REFRESH)

    def test_answer_without_next_update_is_refreshed_hourly(self):
        answer = self.answer(utc_now(), None)
        self.assertEqual(
            ocsp.refresh_delay(answer, utc_now()), ocsp.REFRESH_WITHOUT_NEXT_UPDATE
        )

    def test_retries_back_off_up_to_a_ceiling(self):
        self.assertEqual(
            [ocsp.retry_delay(n) for n in range(1, 7)],
            [60.0, 120.0, 240.0, 480.0, 600.0, 600.0],
        )
        self.assertEqual(ocsp.retry_delay(1000), ocsp.MAX_RETRY)
