"""
Keys, certificate requests and the self-signed certificates of ACME: the
placeholder served for names whose certificate is not obtained yet, and
the TLS-ALPN-01 challenge certificate (RFC 8737).
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ..devcerts import key_pem, pem
from ..files import ACME_ORIGIN, Entry, KeyPair

#: id-pe-acmeIdentifier (RFC 8737 section 6.1).
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")

#: How long a placeholder is valid: it is replaced as soon as the real
#: certificate comes.
PLACEHOLDER_DAYS = 7


def new_key() -> Any:
    """
    A new private key: ECDSA P-256, which every ACME CA and client takes.
    """
    return ec.generate_private_key(ec.SECP256R1())


def signing_request(names: Sequence[str], key: Any) -> x509.CertificateSigningRequest:
    """
    The certificate request of a finalization: C{names} in the
    subjectAltName (RFC 8555 section 7.4), the first also as common name.
    """
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def self_signed(
    names: Sequence[str],
    key: Any,
    acme_identifier: Optional[bytes] = None,
    now: Optional[datetime.datetime] = None,
) -> x509.Certificate:
    """
    A self-signed certificate for C{names}.

    @param acme_identifier: for a TLS-ALPN-01 challenge, the SHA-256 of the
        key authorization, put in the critical acmeIdentifier extension.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=PLACEHOLDER_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(each) for each in names]),
            critical=False,
        )
    )
    if acme_identifier is not None:
        # The extension's value is a DER OCTET STRING of the digest.
        value = bytes([0x04, len(acme_identifier)]) + acme_identifier
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, value), critical=True
        )
    return builder.sign(key, hashes.SHA256())


def placeholder(names: Sequence[str]) -> Entry:
    """
    What a table serves for its ACME names while the certificate is not
    obtained yet and nothing else is listed: a self-signed certificate,
    which no client trusts, but which lets the TLS listener run (and
    answer TLS-ALPN-01) meanwhile.
    """
    key = new_key()
    return Entry(ACME_ORIGIN, tuple(names), KeyPair((self_signed(names, key),), key))


def challenge_certificate(name: str, key_authorization: str) -> bytes:
    """
    The certificate and key, in PEM, that answer a TLS-ALPN-01 challenge
    for C{name} (RFC 8737 section 3).
    """
    key = new_key()
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return pem(self_signed([name], key, digest)) + key_pem(key)
