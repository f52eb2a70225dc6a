"""
C{type = "api_key"}: requests must carry one of the configured keys, in a
header (C{X-API-Key} by default) or a query parameter.

Keys are compared in constant time: the presented key and every configured
key are hashed (SHA-256) and every digest is compared with
C{hmac.compare_digest}, so the time taken says nothing about how close a
guess was.  A request without a valid key gets C{401 Unauthorized}.  The
key is removed from the request sent to the backend unless C{forward =
true}.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Optional, Tuple
from urllib.parse import parse_qsl, urlencode

import attr
from zope.interface import implementer

from ..config.schema import MODEL_DEFAULT, Field, Invalid, Table, array_of, expected
from ..config.values import boolean, file_path, header_name
from ..interfaces import Answer, IFilter

UNAUTHORIZED = Answer(401, ((b"WWW-Authenticate", b'ApiKey realm="txrevproxy"'),))


def _key(value) -> str:
    if not isinstance(value, str) or len(value) < 8 or any(ord(c) < 33 for c in value):
        raise expected("a key of at least 8 visible characters", value)
    return value


@attr.s(frozen=True, auto_attribs=True)
class Options:
    keys: Tuple[str, ...] = ()
    keys_file: Optional[str] = None
    header: Optional[str] = "X-API-Key"
    query: Optional[str] = None
    forward: bool = False


def _has_keys(arguments):
    if not arguments.get("keys") and not arguments.get("keys_file"):
        yield ("", "needs keys or a keys_file")


OPTIONS = Table(
    Options,
    {
        "keys": Field(array_of(_key, what="an array of keys"), default=MODEL_DEFAULT),
        "keys_file": Field(file_path, default=MODEL_DEFAULT),
        "header": Field(header_name, default="X-API-Key"),
        "query": Field(header_name, default=MODEL_DEFAULT),
        "forward": Field(boolean, default=False),
    },
    checks=(_has_keys,),
)


def _read_keys(path: str) -> Tuple[str, ...]:
    """
    The keys of a file, one per line; blank lines and C{#} comments skipped.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise Invalid(problems=[(".keys_file", "cannot read %s: %s" % (path, error))])
    keys = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(_key(line))
        except Invalid as invalid:
            raise Invalid(
                problems=[
                    (
                        ".keys_file",
                        "%s line %d: %s" % (path, number, invalid.problems[0][1]),
                    )
                ]
            )
    if not keys:
        raise Invalid(problems=[(".keys_file", "%s has no keys" % (path,))])
    return tuple(keys)


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


@implementer(IFilter)
class APIKey:
    def __init__(self, options: Options, keys: Tuple[str, ...]) -> None:
        self._digests = tuple(_digest(key.encode("utf-8")) for key in keys)
        self._header = (
            None if options.header is None else options.header.lower().encode("ascii")
        )
        self._query = None if options.query is None else options.query
        self._forward = options.forward

    def valid(self, presented: bytes) -> bool:
        """
        Whether C{presented} is one of the keys, in time independent of
        which key (or how much of one) it matches.
        """
        digest = _digest(presented)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return found

    def request(self, request) -> Optional[Answer]:
        presented = None
        if self._header is not None:
            values = request.requestHeaders.getRawHeaders(self._header)
            if values:
                presented = values[-1].strip()
        if presented is None and self._query is not None:
            presented = self._fromQuery(request)
        if presented is None or not self.valid(presented):
            return UNAUTHORIZED
        if not self._forward:
            self._remove(request)
        return None

    def _fromQuery(self, request) -> Optional[bytes]:
        _, _, query = request.uri.partition(b"?")
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == self._query:
                return value.encode("latin-1")
        return None

    def _remove(self, request) -> None:
        if self._header is not None:
            request.requestHeaders.removeHeader(self._header)
        if self._query is not None and b"?" in request.uri:
            path, _, query = request.uri.partition(b"?")
            kept = [
                (name, value)
                for name, value in parse_qsl(
                    query.decode("latin-1"), keep_blank_values=True
                )
                if name != self._query
            ]
            request.uri = path + (
                b"?" + urlencode(kept).encode("latin-1") if kept else b""
            )

    def response(self, request, status, headers) -> None:
        return None


def configure(options, context) -> APIKey:
    parsed = OPTIONS(options)
    keys = parsed.keys
    if parsed.keys_file is not None:
        keys += _read_keys(context.path(parsed.keys_file))
    return APIKey(parsed, keys)
