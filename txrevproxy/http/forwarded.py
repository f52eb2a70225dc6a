"""
The C{Forwarded} request header (RFC 7239): read strictly, extended by one
element per hop.

A C{Forwarded} value is a list of elements, one per proxy the request
passed, each a C{;}-separated list of C{name=value} pairs (section 4).  The
proxy appends the element of its own hop to what a trusted proxy sent; it
reads that value first, because appending to a malformed one (an unclosed
quoted string, say) could hide the new element inside an old value, and
the backend would read a chain the proxy never vouched for.
"""

from __future__ import annotations

import ipaddress
import re
from typing import List, Optional, Tuple

from .target import valid_host

Pair = Tuple[bytes, bytes]
Element = Tuple[Pair, ...]

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(rb"[%s]+" % (_TCHAR,))
#: One pair: a token, C{=}, then a token or a quoted string (RFC 9110
#: section 5.6.4: qdtext and quoted-pair).  No whitespace around C{=} or
#: C{;}: the ABNF of section 4 has none.
_PAIR = re.compile(
    rb'([%s]+)=(?:([%s]+)|"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)")'
    % (_TCHAR, _TCHAR)
)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_OWS = re.compile(rb"[ \t]*")
#: What a value must hold to be sent inside a quoted string.
_QUOTABLE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")
#: An obfuscated node name or port (section 6.3).
_OBFUSCATED = re.compile(rb"_[A-Za-z0-9._\-]+")
_PORT = re.compile(rb"[0-9]{1,5}")
#: A URI scheme (RFC 3986 section 3.1), the value of C{proto}.
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*")


def parse_forwarded(value: bytes) -> Optional[List[Element]]:
    """
    The elements of a C{Forwarded} value (several field lines joined with
    C{", "}), or L{None} when the value is malformed.

    Each element is a tuple of C{(name, value)} pairs in their order, the
    names lower-cased and the values unquoted.  Empty list elements are
    skipped, as RFC 9110 section 5.6.1.2 asks of a recipient.  Malformed:
    anything outside the grammar of section 4, a parameter twice in one
    element (section 5), or a C{for}, C{by}, C{proto} or C{host} whose
    value is not what sections 5 and 6 allow.
    """
    elements: List[Element] = []
    pairs: List[Pair] = []
    names = set()
    position = _OWS.match(value).end()
    end = len(value)
    while position < end:
        match = _PAIR.match(value, position)
        if match is not None:
            name = match.group(1).lower()
            token, quoted = match.group(2, 3)
            found = token if token is not None else _QUOTED_PAIR.sub(rb"\1", quoted)
            if name in names or not _valid_parameter(name, found):
                return None
            names.add(name)
            pairs.append((name, found))
            position = match.end()
        if value.startswith(b";", position):
            position += 1
            continue
        position = _OWS.match(value, position).end()
        if position < end:
            if not value.startswith(b",", position):
                return None
            position = _OWS.match(value, position + 1).end()
        if pairs:
            elements.append(tuple(pairs))
            pairs = []
            names = set()
    if pairs:
        elements.append(tuple(pairs))
    return elements


def _valid_parameter(name: bytes, value: bytes) -> bool:
    """
    Whether C{value} is one a parameter of that C{name} may hold; the
    parameters of extensions may hold anything.
    """
    if name == b"for" or name == b"by":
        return valid_node(value)
    if name == b"proto":
        return _SCHEME.fullmatch(value) is not None
    if name == b"host":
        return bool(value) and valid_host(value)
    return True


def valid_node(node: bytes) -> bool:
    """
    Whether C{node} is a node of RFC 7239 section 6: an IPv4 address, an
    IPv6 address in brackets, C{unknown} or an obfuscated name
    (C{_hidden}), then optionally C{:} and a port or an obfuscated port.
    """
    if node.startswith(b"["):
        address, bracket, rest = node[1:].partition(b"]")
        if not bracket or not _ip_address(address, ipaddress.IPv6Address):
            return False
        if not rest:
            return True
        if not rest.startswith(b":"):
            return False
        port = rest[1:]
    else:
        name, colon, port = node.partition(b":")
        if not (
            name.lower() == b"unknown"
            or _OBFUSCATED.fullmatch(name) is not None
            or _ip_address(name, ipaddress.IPv4Address)
        ):
            return False
        if not colon:
            return True
    return _PORT.fullmatch(port) is not None or _OBFUSCATED.fullmatch(port) is not None


def _ip_address(text: bytes, kind) -> bool:
    # Python's IPv6Address takes a zone (fe80::1%eth0), which RFC 3986
    # does not; both take only ASCII digits, hex digits, dots and colons
    # otherwise.
    if not text or b"%" in text:
        return False
    try:
        kind(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def quote(value: bytes) -> bytes:
    """
    A parameter value as RFC 7239 section 4 writes it: as it is when it is
    a token, else in a quoted string.

    @raise ValueError: the value holds a character no quoted string may
        (a control character other than tab).
    """
    if _TOKEN.fullmatch(value) is not None:
        return value
    if _QUOTABLE.fullmatch(value) is None:
        raise ValueError("%r cannot be a Forwarded value" % (value,))
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def serialize_forwarded(elements: List[Element]) -> bytes:
    """
    The C{Forwarded} value of some elements, the inverse of
    L{parse_forwarded}.
    """
    return b", ".join(
        b";".join(name + b"=" + quote(value) for name, value in element)
        for element in elements
    )


def node(client_ip: bytes) -> bytes:
    """
    The node of a peer address, unquoted: an IPv6 address in brackets
    (section 6), C{unknown} for a peer without an IP address (a Unix
    socket, which the proxy names C{unix}).
    """
    if b":" in client_ip:
        # Without a zone (fe80::1%eth0): RFC 3986 has none.
        return b"[" + client_ip.partition(b"%")[0] + b"]"
    if client_ip == b"unix":
        return b"unknown"
    return client_ip


def hop_element(client_ip: bytes, scheme: bytes, host: bytes) -> bytes:
    """
    This hop's element: C{for} the peer, C{proto} the scheme it used, and
    C{host} the Host it asked for, left out when it has none or one no
    valid Host would hold.  There is no C{by}: the backend knows the
    proxy's address, and section 8.3 asks not to spread addresses without
    a need.
    """
    element = b"for=" + quote(node(client_ip)) + b";proto=" + scheme
    if host and valid_host(host):
        element += b";host=" + quote(host)
    return element


def extend_forwarded(prior: Optional[bytes], element: bytes) -> bytes:
    """
    The C{Forwarded} value to send: a trusted proxy's value C{prior} with
    this hop's C{element} appended, or the element alone when there is no
    prior value or it is malformed (then its chain cannot be vouched for,
    and only this hop is known for sure).
    """
    if prior and parse_forwarded(prior):
        return prior + b", " + element
    return element
