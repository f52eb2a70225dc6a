"""
What an HTTP/1.1 request head may contain (RFC 9112), checked line by line
by the proxy's head reader (L{txrevproxy.http.request_parser}).

Parsers are often lenient where a proxy must not be (Twisted's, which the
proxy used to read heads with, unfolds obs-folded lines, lets control
characters other than CR, LF and NUL through, and takes
C{Transfer-Encoding: identity}).  A proxy that reads a head differently
from the backend behind it is how requests are smuggled, so everything
RFC 9112 does not allow is refused here with 400, and the connection is
closed (L{txrevproxy.server.channel.ProxyChannel} sees to it).

An HTTP/2 request goes on to an HTTP/1.1 backend too: its fields go
through the same L{field_status} (L{http2_field_status}, for
L{txrevproxy.server.http2}), and its body through the same
L{body_status}.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .headers import HOP_BY_HOP, SET_BY_PROXY

#: method SP request-target SP HTTP-version (RFC 9112 section 3): a token,
#: one space, a target of visible ASCII characters, one space, the version.
#: A target's bytes 0x80 to 0xFF are refused: no URI has them (RFC 3986
#: section 2), and backends read them differently (as UTF-8, as Latin-1,
#: or by their low seven bits, 0xAE as "."), past the proxy's routes.
#: (Twisted's parser, which read the heads before, refused those above
#: 0xB0 only: its bound is 176, in decimal, for "~", which is 0o176.)
_REQUEST_LINE = re.compile(
    rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x7e]+ HTTP/([0-9])\.([0-9])\Z"
)

#: A field name: a token (RFC 9110 section 5.1), matched whole.
FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")

#: Control characters other than HTAB: never allowed in a field line (RFC
#: 9110 section 5.5; CR and LF alone are line breaks a proxy must not
#: guess about).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_TRANSFER_ENCODING = b"transfer-encoding"
_CONTENT_LENGTH = b"content-length"

#: The largest Content-Length taken: what a signed 64-bit integer holds,
#: the most a backend can be trusted to read without wrapping around.
MAX_CONTENT_LENGTH = 2 ** 63 - 1

#: What a field name with C{_} must not become once a
#: backend maps C{_} to C{-} (as CGI, WSGI, PHP and Rack do): a framing or
#: hop-by-hop field, or one the proxy writes itself (L{SET_BY_PROXY}: Host,
#: X-Forwarded-*, Forwarded, Via, X-Request-ID ...), which a backend would
#: otherwise read twice, once from the client.
UNDERSCORE_REFUSED = HOP_BY_HOP | SET_BY_PROXY

#: What L{field_line_status} returns for an acceptable field line whose
#: name contains C{_}: the site forwards it or drops it
#: (C{[server] underscores_in_headers}).
UNDERSCORED = -1

#: The methods whose request content has no generally defined semantics
#: (RFC 9110 sections 9.3.1, 9.3.2, 9.3.5, 9.3.7 and 9.3.8): a body on one
#: of them is read as one by some servers and as the next request by
#: others.  C{TRACE} must not have content at all (section 9.3.8).
NO_BODY_SEMANTICS = frozenset([b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"])

#: What L{body_status} returns for a body forwarded on a method that
#: defines none (C{[server] body_without_semantics = "forward_and_close"}).
WITHOUT_SEMANTICS = -2

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
    Check a field line of an HTTP/1.x request head: see L{split_field_line}.

    @return: 0 when the line is acceptable, L{UNDERSCORED} when it is but
        its name contains C{_}, else 400.
    """
    return split_field_line(line, version)[0]


def split_field_line(
    line: bytes, version: bytes
) -> Tuple[int, bytes, Optional[bytes]]:
    """
    Check a field line of an HTTP/1.x request head, and split it: an
    obs-fold continuation line (RFC 9112 section 5.2) and control
    characters are refused, and the field then goes through
    L{field_status}.  The name's characters and the presence of the colon
    are left to the caller (L{txrevproxy.http.request_parser}).

    @param version: the request's HTTP version, C{b"HTTP/1.1"} or
        C{b"HTTP/1.0"}.
    @return: the status (0 when the line is acceptable, L{UNDERSCORED}
        when it is but its name contains C{_}, else 400), the name, and
        the value without the whitespace around it (L{None} when the line
        has no colon).
    """
    if line[:1] in (b" ", b"\t") or _CONTROL.search(line):
        return 400, b"", None
    name, colon, value = line.partition(b":")
    if not colon:
        return 0, name, None
    value = value.strip(b" \t")
    return field_status(name, value, version), name, value


def http2_field_status(name: bytes, value: bytes) -> int:
    """
    Check a field of an HTTP/2 request's header block, after C{h2} read it,
    by the rules of an HTTP/1.1 head (L{field_status}), since the request
    goes on to an HTTP/1.1 backend: a C{Transfer-Encoding} is refused
    whatever its value, and so are control characters in a name or a value
    (C{h2} 4.2 and later refuse NUL, CR and LF itself, RFC 9113 section
    8.2.1, but older ones let them through, and a CR or LF would start a
    field of its own in the HTTP/1.1 head).

    @return: 0, L{UNDERSCORED} or 400, as L{field_status}.
    """
    if _CONTROL.search(name) or _CONTROL.search(value):
        return 400
    return field_status(name, value, b"HTTP/2")


def field_status(name: bytes, value: bytes, version: bytes) -> int:
    """
    The framing rules of a request field, the same for HTTP/1.x and HTTP/2
    requests: any Transfer-Encoding but a single C{chunked} in an HTTP/1.1
    request is refused (RFC 9112 section 6.1; HTTP/1.0 and HTTP/2 have
    none), a Content-Length that is not one decimal number of at most 63
    bits (section 6.3: no list, no sign, never read modulo anything), and
    a name with C{_} that a backend could read as one of
    L{UNDERSCORE_REFUSED}: with that, the framing the proxy reads is the
    only one a backend can read.

    @param value: the value without the whitespace around it.
    @param version: C{b"HTTP/1.1"}, C{b"HTTP/1.0"} or C{b"HTTP/2"}.
    @return: 0 when the field is acceptable, L{UNDERSCORED} when it is but
        its name contains C{_}, else 400.
    """
    lower = name.lower()
    if lower == _TRANSFER_ENCODING:
        return 0 if version == b"HTTP/1.1" and value.lower() == b"chunked" else 400
    if lower == _CONTENT_LENGTH:
        return 0 if content_length(value) is not None else 400
    if b"_" in name:
        if lower.replace(b"_", b"-") in UNDERSCORE_REFUSED:
            return 400
        return UNDERSCORED
    return 0


def body_status(method: bytes, refuse: bool) -> int:
    """
    What becomes of a request body on C{method}, for HTTP/1.x and HTTP/2
    alike.

    @param refuse: whether the site refuses a body on a method that
        defines none (C{[server] body_without_semantics = "refuse"}).
    @return: 0 for a method whose body means something; 400 for a body on
        C{TRACE}, which must have none (RFC 9110 section 9.3.8), and on
        the other L{NO_BODY_SEMANTICS} methods when C{refuse}; else
        L{WITHOUT_SEMANTICS}: the body is forwarded, and its carrier sees
        that nothing after it can be read as another request.
    """
    if method not in NO_BODY_SEMANTICS:
        return 0
    if refuse or method == b"TRACE":
        return 400
    return WITHOUT_SEMANTICS


def content_length(value: bytes) -> Optional[int]:
    """
    Read a Content-Length value (RFC 9112 section 6.3): one or more ASCII
    digits whose number fits in 63 bits.

    @return: the length, or L{None} when the value is not one.
    """
    if not value.isdigit() or len(value.lstrip(b"0")) > 19:
        # More than 19 significant digits cannot fit, and int() is not
        # asked to read (or refuse, past 4300 digits) a long string.
        return None
    length = int(value)
    return length if length <= MAX_CONTENT_LENGTH else None
