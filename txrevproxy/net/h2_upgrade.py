"""
The request of an HTTP/1.1 upgrade to h2c (RFC 7540 section 3.2) handed
to Twisted's HTTP/2 server connection (C{twisted.web._http2}, a private
module) as the stream 1 it becomes.

Twisted serves no upgrade to h2c, and makes a stream only from the
events C{h2} reports as frames arrive: the upgraded request came as
HTTP/1.1, so its events are made here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import List, Tuple

TWISTED_PRIVATE = (
    "twisted.web._http2.H2Connection._requestReceived",
    "twisted.web._http2.H2Connection._requestEnded",
    "twisted.web._http2.H2Connection._tryToWriteControlData",
)


def receive_upgraded_request(
    connection, settings: bytes, headers: List[Tuple[bytes, bytes]]
) -> None:
    """
    Continue C{connection}, just made after a C{101 Switching Protocols},
    as an upgrade: the client's C{HTTP2-Settings} apply, and the request
    that asked for it is stream 1, whole (RFC 7540 section 3.2), as if its
    HEADERS frame had come with END_STREAM.

    @param connection: a Twisted C{H2Connection} whose connection was just
        made (its SETTINGS are sent; C{h2} sends them again here, which
        the client acknowledges twice).
    @param settings: the C{HTTP2-Settings} value, base64url with padding.
    @param headers: the request as stream 1's header block.
    """
    connection.conn.initiate_upgrade_connection(settings)
    # Only the fields Twisted reads of h2's events (whose constructors
    # changed between h2 versions).
    connection._requestReceived(SimpleNamespace(stream_id=1, headers=headers))
    connection._requestEnded(SimpleNamespace(stream_id=1))
    connection._tryToWriteControlData()
