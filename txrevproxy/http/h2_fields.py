"""
An HTTP/1.1 message head as HTTP/2 fields and back (RFC 9113 section 8):
the proxy builds every request head as HTTP/1.1 fields, and an HTTP/2
backend connection sends them as pseudo-header fields and lower-case
names, without the connection-specific ones.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from hpack import NeverIndexedHeaderTuple

Header = Tuple[bytes, bytes]

#: The fields of an HTTP/1.1 request head that the proxy adds itself for
#: the framing and that HTTP/2 forbids (RFC 9113 section 8.2.2), and Host,
#: which becomes C{:authority} (section 8.3.1); the client's own
#: connection-specific fields are dropped already
#: (L{txrevproxy.http.headers.upstream_request_headers}).
_NOT_SENT = frozenset([b"connection", b"upgrade", b"transfer-encoding", b"host"])

#: Fields whose value is new in every request, kept out of the HPACK
#: dynamic table (RFC 7541 section 6.2.3): each would push out the fields
#: that repeat, and every lookup in the table is longer the more it holds.
UNIQUE_FIELDS = frozenset([b"x-request-id"])

def h2_request_fields(
    method: bytes, target: bytes, headers: List[Header], scheme: bytes
) -> List[Header]:
    """
    The HTTP/2 fields of a request head.

    C{te: trailers} is always sent: the proxy passes trailers on, and gRPC
    servers refuse a call without it.

    @param scheme: the backend's, C{b"https"} for h2 and C{b"http"} for h2c.
    """
    authority = b""
    fields = []
    for name, value in headers:
        lname = name.lower()
        if lname in _NOT_SENT:
            if lname == b"host":
                authority = value
            continue
        if lname in UNIQUE_FIELDS:
            fields.append(NeverIndexedHeaderTuple(lname, value))
        else:
            fields.append((lname, value))
    return [
        (b":method", method),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", target),
        (b"te", b"trailers"),
    ] + fields


def h2_response_head(fields: List[Header]) -> Tuple[int, List[Header], Optional[int]]:
    """
    The status, the regular fields and the Content-Length (L{None} when
    absent or not one decimal number) of an HTTP/2 response head.
    """
    status = 0
    headers = []
    length = None
    for name, value in fields:
        if name[:1] == b":":
            if name == b":status":
                status = int(value)
            continue
        if name == b"content-length" and value.isdigit():
            length = int(value)
        headers.append((name, value))
    return status, headers, length

