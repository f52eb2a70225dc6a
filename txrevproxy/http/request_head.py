"""
What an HTTP/1.1 request head may contain (RFC 9112), checked line by line
before Twisted's parser reads it.

Twisted's own parser is lenient where a proxy must not be: it unfolds
obs-folded lines, lets control characters other than CR, LF and NUL
through, and takes C{Transfer-Encoding: identity}.  A proxy that reads a
head differently from the backend behind it is how requests are smuggled,
so everything RFC 9112 does not allow is refused here with 400, and the
connection is closed (L{txrevproxy.server.channel.ProxyChannel} sees to it).
"""

from __future__ import annotations

import re

#: method SP request-target SP HTTP-version (RFC 9112 section 3): a token,
#: one space, a target of visible characters (obs-text tolerated), one
#: space, the version.
_REQUEST_LINE = re.compile(
    rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e\x80-\xff]+ HTTP/([0-9])\.([0-9])\Z"
)

#: Control characters other than HTAB: never allowed in a field line (RFC
#: 9110 section 5.5; CR and LF alone are line breaks a proxy must not
#: guess about).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_TRANSFER_ENCODING = b"transfer-encoding:"

_SUPPORTED_VERSIONS = frozenset([(b"1", b"0"), (b"1", b"1")])


def request_line_status(line: bytes) -> int:
    """
    Check a request line.

    @return: 0 when it is well formed, 505 for an HTTP version other than
        1.0 and 1.1, 400 otherwise.
    """
    match = _REQUEST_LINE.match(line)
    if match is None:
        return 400
    if match.groups() not in _SUPPORTED_VERSIONS:
        return 505
    return 0


def field_line_status(line: bytes, version: bytes) -> int:
    """
    Check a field line of a request head (Twisted checks the name's
    characters and the presence of the colon).

    Refused: an obs-fold continuation line (RFC 9112 section 5.2),
    control characters, and any Transfer-Encoding but a single
    C{chunked}, or any at all in an HTTP/1.0 request (RFC 9112 section
    6.1): with that, the framing the proxy reads is the only one a backend
    can read.

    @param version: the request's HTTP version, C{b"HTTP/1.1"} or
        C{b"HTTP/1.0"}.
    @return: 0 when the line is acceptable, else 400.
    """
    if line[:1] in (b" ", b"\t") or _CONTROL.search(line):
        return 400
    if line[:18].lower() == _TRANSFER_ENCODING and (
        version != b"HTTP/1.1" or line[18:].strip(b" \t").lower() != b"chunked"
    ):
        return 400
    return 0
