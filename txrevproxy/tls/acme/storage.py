"""
The files of an ACME table's C{storage} directory.

Every process of the proxy reads them: the one that orders writes the
certificate there and the others pick it up (see
L{txrevproxy.tls.watch}), and the pending challenges are files so that
whichever worker a CA's validation connects to can answer it::

    storage/account-key.pem                     the account's key (0600)
    storage/certificates/NAME/fullchain.pem     the certificate, leaf first
    storage/certificates/NAME/privkey.pem       its key (0600)
    storage/challenges/http-01/TOKEN            a key authorization
    storage/challenges/tls-alpn-01/NAME.pem     a challenge certificate and key

C{NAME} is the certificate's first name.  Files are written to a
temporary name and renamed over the old one, so a reader never sees half
of one; the key is written before the certificate, so a certificate is
never newer than its key.
"""

from __future__ import annotations

import errno
import os
from typing import List, Optional, Sequence

import attr

ACCOUNT_KEY = "account-key.pem"
CERTIFICATES = "certificates"
CHAIN = "fullchain.pem"
KEY = "privkey.pem"
CHALLENGES = "challenges"


def write_file(path: str, data: bytes, private: bool = False) -> None:
    """
    Replace C{path} with C{data} in one step (a rename), making its
    directory if needed.

    @param private: make the file readable by its owner only (keys).
    """
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = "%s.tmp-%d" % (path, os.getpid())
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644
    )
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def read_file(path: str) -> Optional[bytes]:
    """
    The contents of C{path}, or L{None} when there is no such file.
    """
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _safe(component: str) -> str:
    """
    A token or name as one path component: tokens are base64url and names
    DNS names, so anything else (a slash, a leading dot) is refused.
    """
    if not component or component.startswith(".") or "/" in component or "\0" in component:
        raise ValueError("not a file name: %r" % (component,))
    return component


@attr.s(frozen=True, auto_attribs=True)
class Storage:
    """
    The C{storage} directory of one certificate.

    @ivar directory: the absolute path of the directory.
    @ivar names: the certificate's names; the first names its files.
    """

    directory: str
    names: Sequence[str]

    @classmethod
    def of(cls, acme) -> "Storage":
        """
        The storage of a L{txrevproxy.config.model.ACME}.
        """
        return cls(acme.storage, acme.names)

    @property
    def account_key(self) -> str:
        return os.path.join(self.directory, ACCOUNT_KEY)

    @property
    def chain(self) -> str:
        return os.path.join(self.directory, CERTIFICATES, self.names[0], CHAIN)

    @property
    def key(self) -> str:
        return os.path.join(self.directory, CERTIFICATES, self.names[0], KEY)

    def save_certificate(self, chain: bytes, key: bytes) -> None:
        """
        Store a new certificate chain and its key (the key first).
        """
        write_file(self.key, key, private=True)
        write_file(self.chain, chain)

    def challenge(self, kind: str, name: str) -> str:
        """
        The file of a pending challenge: C{kind} is C{"http-01"} (C{name}
        is the token) or C{"tls-alpn-01"} (C{name} is the DNS name).
        """
        suffix = ".pem" if kind == "tls-alpn-01" else ""
        return os.path.join(self.directory, CHALLENGES, kind, _safe(name) + suffix)

    def put_challenge(self, kind: str, name: str, data: bytes) -> None:
        write_file(self.challenge(kind, name), data, private=True)

    def remove_challenge(self, kind: str, name: str) -> None:
        try:
            os.remove(self.challenge(kind, name))
        except FileNotFoundError:
            pass


def storages_of(block) -> List[Storage]:
    """
    The storage of a C{[tls.NAME]} table's C{acme}, in a list that is
    empty when it has none.
    """
    return [] if block.acme is None else [Storage.of(block.acme)]


def storages(config) -> List[Storage]:
    """
    The L{Storage} of every C{[tls.NAME]} table of C{config} with C{acme}.
    """
    return [each for block in config.tls.values() for each in storages_of(block)]
