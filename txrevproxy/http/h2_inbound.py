"""
The checks of RFC 9113 on the header blocks an HTTP/2 client sends
(sections 8.2 and 8.3), in one pass over the fields.

C{h2} makes the same checks with its C{validate_inbound_headers}, as a
chain of seven generators every field goes through, with a Python loop
over each byte of each name.  L{malformed_fields} asks the same of a
block with a regular expression for the characters and a few set
lookups (h2load's request head of six fields: 10.4 against 4.2 us on
CPython 3.11, 2.0 against 0.7 us on PyPy 3.9), so the proxy's C{h2}
connection runs without C{h2}'s own checks (it is given this one, see
L{txrevproxy.net.h2.TrailingConnection}).

What is refused is what C{h2} 4.4 refuses, with one difference: every
request needs C{:method}, C{:scheme} and C{:path}, a CONNECT one too (as
C{h2} 4.3 had it), since the proxy has no CONNECT tunnel over HTTP/2 and
Twisted's streams need the path.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

from h2.utilities import CONNECTION_HEADERS

#: The characters a field name may not have (RFC 9113 section 8.2.1): the
#: controls, space, the upper-case letters and everything from DEL on (a
#: colon is for the first character of a pseudo-header only).
_BAD_NAME = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")

#: The characters a field value may not have (section 8.2.1).
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

#: What starts or ends a value that is refused: whitespace (section 8.2.1).
_WHITESPACE = frozenset(b" \t")

#: The pseudo-header fields of a request (section 8.3.1, and RFC 8441's
#: C{:protocol}, for CONNECT only).
_REQUEST_PSEUDO = frozenset([b":method", b":scheme", b":authority", b":path", b":protocol"])
_REQUIRED_PSEUDO = frozenset([b":method", b":scheme", b":path"])


def malformed_fields(fields: Iterable[Tuple[bytes, bytes]], trailers: bool = False) -> Optional[str]:
    """
    Why a header block a client sent is malformed (RFC 9113 section 8.1.1),
    or L{None} when it is not.

    @param fields: the decoded fields, in their order.
    @param trailers: the block is a request's trailers, which have no
        pseudo-header fields, rather than its head.
    """
    pseudo = set()
    regular = False
    method = authority = host = None
    for name, value in fields:
        if not name:
            return "empty field name"
        if _BAD_NAME.search(name) is not None or name.find(b":", 1) >= 0:
            return "field name {!r} has a character it may not have".format(name)
        if value:
            if _BAD_VALUE.search(value) is not None:
                return "value of {!r} has NUL, CR or LF".format(name)
            if value[0] in _WHITESPACE or value[-1] in _WHITESPACE:
                return "value of {!r} starts or ends with whitespace".format(name)
        if name[0] == 0x3A:
            if trailers:
                return "pseudo-header field {!r} in trailers".format(name)
            if regular:
                return "pseudo-header field {!r} after a regular one".format(name)
            if name in pseudo:
                return "pseudo-header field {!r} twice".format(name)
            if name not in _REQUEST_PSEUDO:
                return "pseudo-header field {!r} is not a request's".format(name)
            pseudo.add(name)
            if name == b":method":
                method = value
            elif name == b":authority":
                authority = value
            elif name == b":path" and not value:
                return "empty :path"
            continue
        regular = True
        if name in CONNECTION_HEADERS:
            return "connection-specific field {!r}".format(name)
        if name == b"te" and value.lower() != b"trailers":
            return "TE other than trailers"
        if name == b"host" and not trailers:
            if host is not None:
                return "Host twice"
            host = value
    if trailers:
        return None
    if not _REQUIRED_PSEUDO <= pseudo:
        return "missing {}".format(b", ".join(sorted(_REQUIRED_PSEUDO - pseudo)).decode())
    if b":protocol" in pseudo and method != b"CONNECT":
        return ":protocol without CONNECT"
    if authority is None and host is None:
        return "neither :authority nor Host"
    if authority is not None and host is not None and authority != host:
        return ":authority and Host differ"
    return None
