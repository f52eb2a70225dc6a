"""
Sealed cookies: a small JSON object encrypted and authenticated with
AES-256-GCM (cryptography's AEAD), so the browser holds the session and
every worker process, and every proxy sharing the secrets, can read it.

A session kept in the cookie itself needs no table shared between
workers, survives reloads and restarts, and is bounded by the cookie's
size (4 KiB with its name and attributes, RFC 6265 section 6.1), so only
what is needed goes in it.

Keys are derived from the operator's secrets with HKDF-SHA256.  The first
secret seals; every one opens, so a secret is rotated by putting the new
one first and removing the old one once the cookies it sealed have
expired.  The cookie's name is authenticated too (as associated data), so
a value sealed for one purpose (the login in progress) is never accepted
for another (the session).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Dict, Optional, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The largest cookie a browser must keep (name, value and attributes).
MAX_COOKIE = 4096

#: The first byte of a sealed value: its format, so it can change.
_VERSION = b"\x01"


def _derive(secret: bytes) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"txrevproxy sealed cookie v1",
    ).derive(secret)
    return AESGCM(key)


class CookieSealer:
    """
    Seals and opens cookie values with the keys of a list of secrets.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._keys = [_derive(secret) for secret in secrets]

    def seal(self, purpose: bytes, payload: Dict[str, Any]) -> bytes:
        """
        The cookie value holding C{payload}, for the cookie named
        C{purpose}: base64url of version, nonce and ciphertext with its tag.
        """
        nonce = os.urandom(12)
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        sealed = _VERSION + nonce + self._keys[0].encrypt(nonce, data, purpose)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=")

    def open(self, purpose: bytes, value: bytes) -> Optional[Dict[str, Any]]:
        """
        The payload of a value sealed with any of the keys for C{purpose},
        or L{None} for a value changed, sealed for something else, or with
        a key no longer held.
        """
        try:
            sealed = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(sealed) < 1 + 12 + 16 or sealed[:1] != _VERSION:
            return None
        nonce, box = sealed[1:13], sealed[13:]
        for key in self._keys:
            try:
                data = key.decrypt(nonce, box, purpose)
            except InvalidTag:
                continue
            payload = json.loads(data)
            return payload if isinstance(payload, dict) else None
        return None
