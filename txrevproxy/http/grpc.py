"""
The few rules of gRPC (its HTTP/2 protocol, U{https://github.com/grpc/grpc/
blob/master/doc/PROTOCOL-HTTP2.md}) a proxy needs: telling a gRPC request,
reading its C{grpc-timeout}, and the status a gRPC client is given instead
of an HTTP error page, which it could not read.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

Header = Tuple[bytes, bytes]

#: The gRPC status codes the proxy's own answers use.
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

#: HTTP statuses to gRPC codes, as gRPC's own "HTTP to gRPC Status Code
#: Mapping" gives them, except for 504: a proxy's own 504 means its
#: timeout ran out, which a gRPC client knows as DEADLINE_EXCEEDED (as
#: Envoy answers).  Any other status is UNKNOWN.
_STATUS_FOR_HTTP = {
    400: INTERNAL,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
}

#: Seconds per unit of a C{grpc-timeout} value.
_TIMEOUT_UNITS = {
    b"H": 3600.0,
    b"M": 60.0,
    b"S": 1.0,
    b"m": 1e-3,
    b"u": 1e-6,
    b"n": 1e-9,
}


def is_grpc(content_type: Optional[bytes]) -> bool:
    """
    Whether a request with this Content-Type is a gRPC call
    (C{application/grpc}, or C{application/grpc+proto} and the like).
    """
    return content_type is not None and content_type[:16].lower() == b"application/grpc"


def grpc_timeout(value: Optional[bytes]) -> Optional[float]:
    """
    The seconds of a C{grpc-timeout} field (at most 8 digits and a unit,
    such as C{100m} or C{5S}), or L{None} when absent or malformed (a
    malformed one is ignored, as gRPC servers do, rather than refused).
    """
    if value is None or not 2 <= len(value) <= 9:
        return None
    digits, unit = value[:-1], value[-1:]
    seconds = _TIMEOUT_UNITS.get(unit)
    if seconds is None or not digits.isdigit():
        return None
    return int(digits) * seconds


def grpc_status(http_status: int) -> int:
    """
    The gRPC status code a gRPC client is given for an HTTP error status.
    """
    return _STATUS_FOR_HTTP.get(http_status, UNKNOWN)


def grpc_error_fields(http_status: int, message: bytes) -> List[Header]:
    """
    The C{grpc-status} and C{grpc-message} fields that stand for the
    proxy's own HTTP error answer C{http_status}; the message is
    percent-encoded as the protocol asks: every byte outside the printable
    ASCII range, and C{%} itself.
    """
    encoded = b"".join(
        b"%%%02X" % (byte,)
        if byte < 0x20 or byte > 0x7E or byte == 0x25
        else bytes((byte,))
        for byte in message
    )
    return [
        (b"grpc-status", b"%d" % (grpc_status(http_status),)),
        (b"grpc-message", encoded),
    ]
