"""
Where the keys that verify tokens come from: files (PEM public keys or
certificates, JWK Sets), a shared secret, or a JWK Set at a URL fetched in
the background (see L{txrevproxy.filters.documents}).

Each source gives its keys as PyJWK objects bound to one algorithm each
(L{txrevproxy.filters.tokens.verification_keys}), and says whether newer
keys may be had when a token names a key it does not hold.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from twisted.internet.defer import Deferred

from .documents import DOCUMENTS, RemoteDocument
from .tokens import (
    TokenRules,
    candidate_keys,
    check_token,
    token_header,
    verification_keys,
)


class KeyFileError(Exception):
    """
    A key file that cannot be used; the text says why.
    """


def _public_jwk(data: bytes) -> dict:
    """
    The JWK of a PEM public key or certificate.
    """
    if b"-----BEGIN CERTIFICATE-----" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = load_pem_public_key(data)
    if isinstance(key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return OKPAlgorithm.to_jwk(key, as_dict=True)
    raise KeyFileError("not an RSA, EC or Ed25519 public key")


def read_key_file(path: str, algorithms: Sequence[str]) -> Tuple[PyJWK, ...]:
    """
    The keys of a file: a JWK Set (JSON) or a PEM public key or
    certificate.

    @raise KeyFileError: for a file that cannot be read, or holds no key
        for any of C{algorithms}.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise KeyFileError("cannot read %s: %s" % (path, error.strerror))
    try:
        if data.lstrip().startswith(b"{"):
            jwks = json.loads(data)
        else:
            jwks = {"keys": [_public_jwk(data)]}
    except (ValueError, TypeError) as error:
        raise KeyFileError(
            "%s is neither a JWK Set nor a PEM public key: %s" % (path, error)
        )
    keys = verification_keys(jwks, algorithms)
    if not keys:
        raise KeyFileError(
            "%s has no key for the algorithms %s" % (path, ", ".join(algorithms))
        )
    return keys


def secret_keys(secret: bytes, algorithms: Sequence[str]) -> Tuple[PyJWK, ...]:
    """
    A shared secret as a key for each HMAC algorithm of C{algorithms}.
    """
    k = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
    return verification_keys({"keys": [{"kty": "oct", "k": k}]}, algorithms)


class FixedKeys:
    """
    Keys that never change (from files or a secret).
    """

    def __init__(self, keys: Tuple[PyJWK, ...]) -> None:
        self._keys = keys

    def keys(self) -> Tuple[PyJWK, ...]:
        return self._keys

    def newer(self) -> Optional[Deferred]:
        """
        L{None}: there are no other keys to wait for.
        """
        return None

    def close(self) -> None:
        return None


class FetchedKeys:
    """
    The keys of a JWK Set at a URL, shared with every filter that names
    it, converted for this filter's algorithms once per fetch.
    """

    def __init__(
        self,
        reactor,
        url: str,
        algorithms: Sequence[str],
        refresh: float,
        min_refresh: float,
    ) -> None:
        self._reactor = reactor
        self._algorithms = tuple(algorithms)
        self._closed = False
        self._document: RemoteDocument = DOCUMENTS.acquire(
            reactor, url, refresh, min_refresh
        )
        self._version = -1
        self._keys: Tuple[PyJWK, ...] = ()

    def keys(self) -> Tuple[PyJWK, ...]:
        document = self._document
        if document.version != self._version:
            self._version = document.version
            self._keys = verification_keys(document.document or {}, self._algorithms)
        return self._keys

    def newer(self) -> Deferred:
        """
        Wait for the JWK Set fetched next (at most one fetch per
        C{min_refresh}; see L{RemoteDocument.newer}).
        """
        return self._document.newer()

    def close(self):
        """
        Let go of the shared set, once (a retired runtime may be closed
        again when the service stops).
        """
        if self._closed:
            return None
        self._closed = True
        return DOCUMENTS.release(self._reactor, self._document)


def verified_claims(
    token: str, source, rules: TokenRules, clock
) -> Union[Dict[str, Any], Deferred]:
    """
    The claims of a token checked with the keys of C{source}: at once, or,
    when the token names a key the source does not hold but may get (a
    provider's rotated key), once the source has looked for newer keys.

    @param source: L{FixedKeys} or L{FetchedKeys}.
    @raise TokenRefused: at once, or through the L{Deferred}.
    """
    if not candidate_keys(token_header(token), source.keys(), rules):
        waiting = source.newer()
        if waiting is not None:
            return waiting.addCallback(
                lambda _: check_token(token, source.keys(), rules, clock.seconds())
            )
    return check_token(token, source.keys(), rules, clock.seconds())
