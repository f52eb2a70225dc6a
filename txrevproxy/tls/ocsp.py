"""
OCSP for stapling, without I/O: the responder's URL, the request for a
certificate, the check of a responder's answer, and when to ask again.

L{txrevproxy.tls.stapling} moves the bytes; everything it decides is
decided here, so that it is tested without a network or a reactor.
"""

from __future__ import annotations

import datetime
from typing import Optional, Sequence

import attr
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

#: How far in the future a response's thisUpdate may be: the responder's
#: clock and ours may disagree by this much (OpenSSL's C{ocsp} command
#: allows 5 minutes too).
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: Seconds: the soonest and the latest a good response is refreshed.  The
#: refresh falls halfway through the response's validity, brought within
#: these bounds: a responder whose responses live a week is asked twice a
#: day, one whose responses live minutes is not asked every few seconds.
MIN_REFRESH = 60.0
MAX_REFRESH = 12 * 3600.0

#: Seconds before a response without nextUpdate (one the responder says
#: is always current) is asked for again.
REFRESH_WITHOUT_NEXT_UPDATE = 3600.0

#: Seconds before the first retry after a failure; each failure in a row
#: doubles it, up to L{MAX_RETRY}.
FIRST_RETRY = 60.0
MAX_RETRY = 600.0


class OCSPError(Exception):
    """
    A responder's answer cannot be stapled, or could not be had; the
    argument is a sentence saying why, for the log.
    """


@attr.s(frozen=True, auto_attribs=True)
class Answer:
    """
    A responder's checked answer about one certificate.

    @ivar der: the whole response, the bytes stapled.
    @ivar status: what the responder says of the certificate; only a
        L{ocsp.OCSPCertStatus.GOOD} one is stapled.
    @ivar this_update: when the responder knew the status to be so.
    @ivar next_update: when the response stops being valid; L{None}: the
        responder always has newer information (RFC 6960, 2.4).
    @ivar revocation_time: for a revoked certificate, when it was revoked.
    """

    der: bytes
    status: ocsp.OCSPCertStatus
    this_update: datetime.datetime
    next_update: Optional[datetime.datetime]
    revocation_time: Optional[datetime.datetime] = None

    @property
    def good(self) -> bool:
        return self.status == ocsp.OCSPCertStatus.GOOD


def when(moment: datetime.datetime) -> str:
    """
    A moment of an OCSP response, as messages show it (responses are
    valid for minutes to days, so seconds matter).
    """
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def issuer_of(chain: Sequence[x509.Certificate]) -> Optional[x509.Certificate]:
    """
    The certificate of C{chain} (leaf first, as a chain file lists it)
    that signed the leaf, or L{None} when the file does not hold it: an
    OCSP request names the certificate by its issuer's name and key.
    """
    leaf = chain[0]
    for candidate in chain[1:]:
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return candidate
    return None


def responder_url(leaf: x509.Certificate) -> Optional[str]:
    """
    The OCSP responder the certificate names in its Authority Information
    Access extension (the first HTTP one), or L{None}.
    """
    try:
        access = leaf.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        location = description.access_location
        if (
            description.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(location, x509.UniformResourceIdentifier)
            and location.value.lower().startswith(("http://", "https://"))
        ):
            return location.value
    return None


def request_for(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """
    The DER OCSP request for C{leaf}.  Its CertID is hashed with SHA-1,
    the one hash every responder answers (RFC 5019, 2.1.1, which public
    CAs follow), and it carries no nonce, so that a responder may answer
    from its cache of signed responses.
    """
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER)


def check_answer(
    der: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime.datetime,
) -> Answer:
    """
    Check a responder's answer about C{leaf} as a client that verifies
    the staple would: a successful response, about this certificate,
    signed by its issuer or by a responder certificate the issuer made for
    OCSP signing (RFC 6960, 4.2.2.2), current at C{now}.

    @param now: an aware UTC datetime.
    @raise OCSPError: it is none of these.
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise OCSPError("the answer is not a DER OCSP response")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OCSPError(
            "the responder answered %s, not a certificate status"
            % (response.response_status.name.lower(),)
        )
    single = _about(response, leaf, issuer)
    if single is None:
        raise OCSPError(
            "the response is not about this certificate (serial %x)"
            % (leaf.serial_number,)
        )
    problem = _signature_problem(response, issuer, now)
    if problem is not None:
        raise OCSPError(problem)
    this_update = single.this_update_utc
    if this_update > now + CLOCK_SKEW:
        raise OCSPError(
            "the response's thisUpdate, %s, is in the future; is the clock right?"
            % (when(this_update),)
        )
    next_update = single.next_update_utc
    if next_update is not None and next_update < now:
        raise OCSPError("the response expired on %s" % (when(next_update),))
    return Answer(
        der,
        single.certificate_status,
        this_update,
        next_update,
        single.revocation_time_utc,
    )


def _about(
    response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> Optional[ocsp.OCSPSingleResponse]:
    """
    The single response whose CertID names C{leaf} issued by C{issuer}:
    same serial number, and the same hashes of the issuer's name and key,
    with whichever hash the responder used.
    """
    for single in response.responses:
        if single.serial_number != leaf.serial_number:
            continue
        try:
            ours = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(leaf, issuer, single.hash_algorithm)
                .build()
            )
        except (ValueError, UnsupportedAlgorithm):
            continue
        if (single.issuer_name_hash, single.issuer_key_hash) == (
            ours.issuer_name_hash,
            ours.issuer_key_hash,
        ):
            return single
    return None


def _signature_problem(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime.datetime
) -> Optional[str]:
    """
    Why the response is not signed by an authorised responder, or L{None}
    when it is: the issuer itself, or a certificate included in the
    response that the issuer delegated OCSP signing to and that is valid
    at C{now}.
    """
    if _signed_by(response, issuer.public_key()):
        return None
    reasons = []
    for delegate in response.certificates:
        reason = _delegation_problem(delegate, issuer, now)
        if reason is None and _signed_by(response, delegate.public_key()):
            return None
        reasons.append(reason or "its signature does not match its certificate")
    if reasons:
        return "the response's responder certificate cannot sign it: " + "; ".join(
            reasons
        )
    return "the response is not signed by the certificate's issuer"


def _delegation_problem(
    delegate: x509.Certificate, issuer: x509.Certificate, now: datetime.datetime
) -> Optional[str]:
    try:
        delegate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return "it was not issued by the certificate's issuer"
    try:
        usages = delegate.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        ).value
    except x509.ExtensionNotFound:
        usages = ()
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        return "it is not for OCSP signing (no OCSPSigning extended key usage)"
    if not (
        delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc
    ):
        return "it is valid from %s to %s only" % (
            when(delegate.not_valid_before_utc),
            when(delegate.not_valid_after_utc),
        )
    return None


def _signed_by(response: ocsp.OCSPResponse, key) -> bool:
    """
    Whether C{key} made the response's signature (RSA PKCS#1 v1.5, ECDSA
    or EdDSA: what responders sign with).
    """
    data, signature = response.tbs_response_bytes, response.signature
    try:
        algorithm = response.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def refresh_delay(answer: Answer, now: datetime.datetime) -> float:
    """
    Seconds until the response after C{answer} is asked for: halfway
    through C{answer}'s validity, so that a responder down for a while is
    retried long before the staple expires, within L{MIN_REFRESH} and
    L{MAX_REFRESH}.
    """
    if answer.next_update is None:
        return REFRESH_WITHOUT_NEXT_UPDATE
    halfway = answer.this_update + (answer.next_update - answer.this_update) / 2
    return min(MAX_REFRESH, max(MIN_REFRESH, (halfway - now).total_seconds()))


def retry_delay(failures: int) -> float:
    """
    Seconds until the responder is asked again after C{failures} failures
    in a row (1 or more): L{FIRST_RETRY}, doubled at each failure, at most
    L{MAX_RETRY}, so that a responder that is down is not hammered and one
    that comes back is soon asked again.
    """
    return min(MAX_RETRY, FIRST_RETRY * 2 ** min(failures - 1, 16))
