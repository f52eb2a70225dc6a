"""
The answers to pending challenges: written into the storage by the
process that orders (L{Responder}), read by every process that accepts
connections (L{http01_answer}, L{tls_alpn01_answer}), so that a worker
answers a validation whichever process placed the order.

Reading happens only for a request under C{/.well-known/acme-challenge/}
or a handshake that offers C{acme-tls/1}: a CA's validation, not
ordinary traffic.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .certificates import challenge_certificate
from .storage import Storage, read_file

HTTP01 = "http-01"
TLS_ALPN01 = "tls-alpn-01"

#: The ALPN protocol of TLS-ALPN-01 (RFC 8737 section 6.2).
ACME_TLS_PROTOCOL = b"acme-tls/1"

#: Where HTTP-01 answers are served (RFC 8555 section 8.3).
HTTP01_PREFIX = b"/.well-known/acme-challenge/"


class Responder:
    """
    Starts and stops answering the challenges of one storage's orders (the
    C{responder} of L{txrevproxy.tls.acme.client.AcmeClient.issue}).
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def put(self, kind: str, name: str, token: str, key_authorization: str) -> None:
        if kind == HTTP01:
            self._storage.put_challenge(kind, token, key_authorization.encode("ascii"))
        else:
            self._storage.put_challenge(
                kind, name, challenge_certificate(name, key_authorization)
            )

    def remove(self, kind: str, name: str, token: str) -> None:
        self._storage.remove_challenge(kind, token if kind == HTTP01 else name)


def _first(storages: Sequence[Storage], kind: str, name: str) -> Optional[bytes]:
    for storage in storages:
        try:
            found = read_file(storage.challenge(kind, name))
        except (ValueError, OSError):
            return None
        if found is not None:
            return found
    return None


def http01_answer(storages: Sequence[Storage], path: bytes) -> Optional[bytes]:
    """
    The key authorization to answer a request for C{path}, or L{None}
    when it is not a pending HTTP-01 challenge's.
    """
    if not path.startswith(HTTP01_PREFIX):
        return None
    token = path[len(HTTP01_PREFIX) :].decode("ascii", "replace")
    return _first(storages, HTTP01, token)


def tls_alpn01_answer(
    storages: Sequence[Storage], server_name: Optional[str]
) -> Optional[Tuple[x509.Certificate, Any]]:
    """
    The certificate and key answering a TLS-ALPN-01 challenge for
    C{server_name}, or L{None} when none is pending.
    """
    if not server_name:
        return None
    found = _first(storages, TLS_ALPN01, server_name.lower().rstrip("."))
    if found is None:
        return None
    return (
        x509.load_pem_x509_certificate(found),
        serialization.load_pem_private_key(found, password=None),
    )
