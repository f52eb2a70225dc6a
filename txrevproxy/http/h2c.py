"""
The HTTP/1.1 upgrade to cleartext HTTP/2 (C{Upgrade: h2c}, RFC 7540
section 3.2, dropped from RFC 9113): whether a request head asks for it
in the form the proxy takes, and that request as the header block of
HTTP/2's stream 1, which carries its response.
"""

from __future__ import annotations

import base64
import binascii
from typing import List, Optional, Tuple

import attr

from .headers import connection_tokens
from .request_head import FIELD_NAME, field_line_status, request_line_status

Header = Tuple[bytes, bytes]

#: Fields of the HTTP/1.1 head that do not become HTTP/2 fields: those of
#: the connection (RFC 9113 section 8.2.2) and of the upgrade, and Host,
#: which becomes C{:authority}.
_NOT_CARRIED = frozenset(
    [
        b"connection",
        b"upgrade",
        b"http2-settings",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"host",
    ]
)


@attr.s(frozen=True, auto_attribs=True)
class H2cUpgrade:
    """
    A request that asked to continue in HTTP/2.

    @ivar settings: its C{HTTP2-Settings} value, base64url with padding
        (as C{h2} reads it): the client's first SETTINGS.
    @ivar headers: the request as stream 1's header block, pseudo-header
        fields first.
    """

    settings: bytes
    headers: List[Header]


def h2c_upgrade(head: bytes) -> Optional[H2cUpgrade]:
    """
    The upgrade to h2c a request head asks for, or L{None}: the request is
    then read as HTTP/1.1 (a server may always ignore an upgrade).

    Taken only from a request the strict reading of an HTTP/1.1 head
    accepts (L{request_line_status}, L{field_line_status}), in origin
    form, with one C{Upgrade: h2c}, one C{HTTP2-Settings} that decodes to
    SETTINGS, a C{Connection} listing both, one C{Host}, and no body: a
    body would have to be read whole before the switch, holding the
    connection.

    @param head: the request line and field lines, without the empty line
        that ends them.
    """
    lines = head.split(b"\r\n")
    line = lines[0]
    if request_line_status(line) or not line.endswith(b" HTTP/1.1"):
        return None
    method, target, _ = line.split(b" ")
    if not target.startswith(b"/"):
        return None
    fields: List[Header] = []
    for field in lines[1:]:
        name, colon, value = field.partition(b":")
        if (
            not colon
            or FIELD_NAME.match(name) is None
            or field_line_status(field, b"HTTP/1.1") > 0
        ):
            return None
        fields.append((name.lower(), value.strip(b" \t")))
    named = {}
    for name, value in fields:
        named.setdefault(name, []).append(value)
    upgrade = named.get(b"upgrade", [])
    settings = named.get(b"http2-settings", [])
    hosts = named.get(b"host", [])
    if (
        [value.lower() for value in upgrade] != [b"h2c"]
        or len(settings) != 1
        or len(hosts) != 1
        or not {b"upgrade", b"http2-settings"}
        <= connection_tokens(named.get(b"connection", []))
        or b"transfer-encoding" in named
        or named.get(b"content-length", [b"0"]) != [b"0"]
    ):
        return None
    padded = settings[0] + b"=" * (-len(settings[0]) % 4)
    try:
        payload = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:
        # Each setting is 6 octets (RFC 9113 section 6.5.1).
        return None
    return H2cUpgrade(
        padded,
        [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", hosts[0]),
            (b":path", target),
        ]
        + [(name, value) for name, value in fields if name not in _NOT_CARRIED],
    )
