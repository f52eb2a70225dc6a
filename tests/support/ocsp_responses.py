"""
OCSP for the tests: responses signed by a test CA or by a responder it
delegated, made with C{cryptography}, and a responder (a twisted.web
resource) that answers the requests it gets with them.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.web.resource import Resource

GOOD = ocsp.OCSPCertStatus.GOOD
REVOKED = ocsp.OCSPCertStatus.REVOKED
UNKNOWN = ocsp.OCSPCertStatus.UNKNOWN


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def responder_certificate(
    issuer: x509.Certificate,
    issuer_key: Any,
    ocsp_signing: bool = True,
    now: Optional[datetime.datetime] = None,
    days: int = 30,
) -> Tuple[x509.Certificate, Any]:
    """
    A responder certificate C{issuer} delegates OCSP signing to (with
    C{ocsp_signing}, its extended key usage says so), valid from an hour
    before C{now} for C{days}.
    """
    now = now or utc_now()
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test OCSP responder")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate, key


def ocsp_response(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    signer_key: Any,
    responder: Optional[x509.Certificate] = None,
    signer: Optional[x509.Certificate] = None,
    status: ocsp.OCSPCertStatus = GOOD,
    this_update: Optional[datetime.datetime] = None,
    next_update: Optional[datetime.datetime] = None,
    lifetime: Optional[datetime.timedelta] = datetime.timedelta(days=7),
    algorithm=hashes.SHA1(),
) -> bytes:
    """
    A successful DER OCSP response about C{leaf}, signed with
    C{signer_key}: the issuer's, or that of C{responder}, a delegated
    responder certificate included in the response.

    @param signer: the certificate of C{signer_key}, named in the response
        but not included, when it is neither the issuer nor C{responder}.

    @param this_update: default: now.
    @param next_update: default: C{this_update + lifetime}, or none when
        C{lifetime} is L{None}.
    """
    this_update = this_update or utc_now()
    if next_update is None and lifetime is not None:
        next_update = this_update + lifetime
    revoked = status == REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=issuer,
            algorithm=algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=this_update - datetime.timedelta(days=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer or responder or issuer)
    )
    if responder is not None:
        builder = builder.certificates([responder])
    response = builder.sign(signer_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """
    An OCSP response that carries no certificate status (C{tryLater} ...).
    """
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


class Responder(Resource):
    """
    An OCSP responder for the certificates C{issuer} signed: it answers
    each POSTed request with a response signed by the issuer, saying
    C{status} and valid for C{lifetime}.

    @ivar leaves: the certificates it knows, by serial number; any other
        is answered C{unauthorized}.
    @ivar requests: the DER requests received, with their Content-Type.
    """

    isLeaf = True

    def __init__(self, issuer: x509.Certificate, issuer_key: Any) -> None:
        super().__init__()
        self.issuer = issuer
        self.issuer_key = issuer_key
        self.leaves: Dict[int, x509.Certificate] = {}
        self.status = GOOD
        self.lifetime = datetime.timedelta(days=7)
        self.requests: List[Tuple[bytes, Optional[bytes]]] = []

    def know(self, leaf: x509.Certificate) -> None:
        self.leaves[leaf.serial_number] = leaf

    def render_POST(self, request) -> bytes:
        body = request.content.read()
        self.requests.append((body, request.getHeader(b"content-type")))
        request.setHeader(b"content-type", b"application/ocsp-response")
        question = ocsp.load_der_ocsp_request(body)
        leaf = self.leaves.get(question.serial_number)
        if leaf is None:
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        return ocsp_response(
            leaf, self.issuer, self.issuer_key, status=self.status, lifetime=self.lifetime
        )


def logged_warnings(case) -> List[str]:
    """
    The warnings logged from now to the end of the test C{case}, as the
    log shows them (the list grows as they are).
    """
    warnings: List[str] = []

    def observe(event) -> None:
        if event.get("log_level") == LogLevel.warn:
            warnings.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return warnings
