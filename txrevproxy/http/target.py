"""
What a request is for, in the form routes are matched against: its host,
and its path normalised so that spellings a backend would treat as the
same path cannot be used to dodge a route.

Normalisation (RFC 3986 section 6.2.2) decodes percent-encoded unreserved
characters (C{%61} is C{a}, C{%2e} is C{.}), writes the other escapes with
upper-case hex digits, collapses C{//} and then removes C{.} and C{..}
segments (section 5.2.4).  An encoded slash (C{%2F}) or backslash (C{%5C})
is not decoded: it is data inside a segment, not a separator.  Backends
disagree on that point, so a segment where such an escape stands next to a
C{.} or C{..} (C{..%2Fadmin}) is refused rather than guessed at.
"""

from __future__ import annotations

import re
from typing import List, Optional

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")
_HIDDEN_SEPARATOR = re.compile(rb"%2F|%5C|\\")
#: What a path that needs normalising has.  One regular expression search
#: is cheaper on CPython than four C{in} tests on bytes (each of which
#: first tries its operand as an integer, and fails).
_UNUSUAL = re.compile(rb"%|//|/\.|\\").search

#: The characters a Host header may hold (RFC 3986 reg-name, an IP
#: literal in brackets, a port); any other makes it invalid.
_HOST_CHARACTERS = (
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    b"-._~!$&'()*+,;=%[]:"
)


def request_host(request) -> bytes:
    """
    The lower-cased host name a request is for, without port or trailing
    dot.
    """
    host = request.requestHeaders.getRawHeaders(b"host", [b""])[0].lower()
    if host.startswith(b"["):
        host = host[: host.find(b"]") + 1]
    else:
        host = host.split(b":", 1)[0]
    return host.rstrip(b".")


def valid_host(host: bytes) -> bool:
    """
    Whether a Host value holds only characters a host can have, so that it
    is safe to copy into a redirect or a header (RFC 9110 section 7.2).
    """
    return not host.translate(None, _HOST_CHARACTERS)


def normalize_path(path: bytes) -> Optional[bytes]:
    """
    The normalised form of a request path (no query), as described in the
    module docstring; L{None} when the path cannot be used: a malformed
    escape (C{%zz}), or a dot segment hidden behind an encoded slash.

    A path that needs no change is returned as it is, at the cost of one
    search: that is the common case on the hot path.
    """
    if _UNUSUAL(path) is None:
        return path
    if b"%" in path:
        path = decode_unreserved(path)
        if path is None:
            return None
    kept: List[bytes] = []
    parts = path.split(b"/")
    for segment in parts[1:]:
        if segment == b"..":
            if kept:
                kept.pop()
        elif segment and segment != b".":
            if _HIDDEN_SEPARATOR.search(segment) and any(
                piece in (b".", b"..") for piece in _HIDDEN_SEPARATOR.split(segment)
            ):
                return None
            kept.append(segment)
    trailing = len(parts) > 2 and parts[-1] in (b"", b".", b"..")
    if not kept:
        return b"/"
    return b"/" + b"/".join(kept) + (b"/" if trailing else b"")


def decode_unreserved(path: bytes) -> Optional[bytes]:
    pieces = path.split(b"%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            return None
        code = int(piece[:2], 16)
        if code in _UNRESERVED:
            out.append(bytes((code,)) + piece[2:])
        else:
            out.append(b"%" + piece[:2].upper() + piece[2:])
    return b"".join(out)


def path_segments(normalized: bytes) -> List[bytes]:
    """
    The segments of a normalised path (C{b"/a/b/"} has C{a} and C{b}).
    """
    return [segment for segment in normalized.split(b"/") if segment]
