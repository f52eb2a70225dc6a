"""
A development CA and leaf certificates, for local HTTPS
(C{txrevproxy certs --out DIR NAME...}), made with C{cryptography}.

The CA (C{DIR/ca.pem}, C{DIR/ca-key.pem}) is made once and reused, so a
browser or C{curl --cacert DIR/ca.pem} that trusts it keeps trusting the
leaves made later.  Every key is ECDSA P-256.  Nothing here is for
production: the CA key sits unencrypted beside the certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)

#: How long a development CA is valid.
CA_DAYS = 3650
#: How long a leaf is valid: 825 days, the most some clients accept.
LEAF_DAYS = 825

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


def file_stem(name: str) -> str:
    """
    The file name (without extension) of a leaf for C{name}: the name
    itself, with a wildcard's C{*} spelt C{_wildcard} (as mkcert does) and
    an IPv6 address's colons as C{-}.
    """
    return name.replace("*", "_wildcard").replace(":", "-")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "txrevproxy development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    now: Optional[datetime.datetime] = None, days: int = CA_DAYS
) -> Tuple[x509.Certificate, Any]:
    """
    A new self-signed CA that may sign leaves only (path length 0).
    """
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("txrevproxy development CA")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _san(name: str) -> x509.GeneralName:
    if _is_address(name):
        return x509.IPAddress(ipaddress.ip_address(name))
    return x509.DNSName(name)


def make_leaf(
    ca: x509.Certificate,
    ca_key: Any,
    names: Sequence[str],
    now: Optional[datetime.datetime] = None,
    days: int = LEAF_DAYS,
    key: Any = None,
    client: bool = False,
    ocsp_url: Optional[str] = None,
) -> Tuple[x509.Certificate, Any]:
    """
    A server certificate for C{names} (host names, C{*.example.test}
    wildcards or IP addresses), signed by C{ca}.

    @param key: the leaf's private key; a new P-256 key when L{None}.
    @param client: make a client certificate instead (for mutual TLS): its
        extended key usage is client authentication.
    @param ocsp_url: the OCSP responder the certificate names (in its
        Authority Information Access), if any.
    """
    now = now or _now()
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder()
    if ocsp_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            ),
            critical=False,
        )
    certificate = (
        builder
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([_san(name) for name in names]), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    ExtendedKeyUsageOID.CLIENT_AUTH
                    if client
                    else ExtendedKeyUsageOID.SERVER_AUTH
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: str, data: bytes) -> None:
    """
    Write a key file readable by its owner only.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def load_or_make_ca(directory: str) -> Tuple[x509.Certificate, Any, bool]:
    """
    The CA in C{directory}, made and written first if it is not there.

    @return: the certificate, its key, and whether it was made now.
    @raise ValueError: when only one of the two CA files exists.
    """
    cert_path = os.path.join(directory, CA_FILE)
    key_path = os.path.join(directory, CA_KEY_FILE)
    present = [os.path.exists(cert_path), os.path.exists(key_path)]
    if all(present):
        with open(cert_path, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
        with open(key_path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
        return certificate, key, False
    if any(present):
        raise ValueError(
            "%s: found only one of %s and %s; remove it to make a new CA"
            % (directory, CA_FILE, CA_KEY_FILE)
        )
    certificate, key = make_ca()
    with open(cert_path, "wb") as file:
        file.write(pem(certificate))
    write_private(key_path, key_pem(key))
    return certificate, key, True


def leaf_names(names: Sequence[str]) -> List[List[str]]:
    """
    The subjectAltNames of each leaf to make for C{names}: one leaf per
    host name, with the IP addresses added to the first one.

    A client connecting to an address sends no SNI name, so the proxy could
    never choose a certificate for an address alone by it; inside the first
    host name's leaf, the address is served to such clients when that leaf
    is the table's default.  With no host name at all, one leaf holds every
    address (for a C{certificates} entry with C{names}).
    """
    hosts = [name for name in names if not _is_address(name)]
    addresses = [name for name in names if _is_address(name)]
    if not hosts:
        return [addresses] if addresses else []
    return [[hosts[0]] + addresses] + [[host] for host in hosts[1:]]


def write_development_certificates(directory: str, names: Sequence[str]) -> List[str]:
    """
    Make (or reuse) the CA in C{directory} and write the leaves of
    L{leaf_names}, each as C{NAME.pem} (the leaf, then the CA) and
    C{NAME-key.pem}, C{NAME} its first name: files a C{[tls.NAME]}
    C{directory} serves as they are.

    @return: the paths written, the CA's first when it was made now.
    """
    os.makedirs(directory, exist_ok=True)
    ca, ca_key, made = load_or_make_ca(directory)
    written = [os.path.join(directory, CA_FILE)] if made else []
    for sans in leaf_names(names):
        leaf, key = make_leaf(ca, ca_key, sans)
        stem = os.path.join(directory, file_stem(sans[0]))
        with open(stem + ".pem", "wb") as file:
            file.write(pem(leaf, ca))
        write_private(stem + "-key.pem", key_pem(key))
        written.append(stem + ".pem")
    return written
