"""
Twisted's HTTP/2 stream (C{twisted.web._http2.H2Stream}, a private
module's), whose request takes the client's fields at once.

Twisted puts each field of a client's header block into the stream's
request with C{getRawHeaders} and C{setRawHeaders}: the name encoded
twice and the value run through C{_sanitizeLinearWhitespace}, once per
field of every request.  Here the fields have been checked before the
stream is made (C{h2}, and the connection's check of RFC 9113 sections
8.2 and 8.3, see L{txrevproxy.net.h2}: lower-case names, no CR, LF or NUL
in a value), so L{FieldsStream} puts them in with L{add_fields}, as the
HTTP/1.1 channel does with the fields its head reader checked, and the
request keeps them in L{RequestFields}, whose lookups by a known name
take one dictionary lookup.
"""

from __future__ import annotations

from typing import List, Tuple

from twisted.web._http2 import H2Stream

from .http_request import add_fields

TWISTED_PRIVATE = (
    "twisted.web._http2.H2Stream",
    "twisted.web._http2.H2Stream._convertHeaders",
    "twisted.web._http2.H2Stream._request",
    "twisted.web._http2.H2Stream._send100Continue",
)


class FieldsStream(H2Stream):
    """
    An L{H2Stream} that hands its request the client's fields in one call
    (L{add_fields}), the pseudo-header fields taken as Twisted takes them.
    """

    def _convertHeaders(self, headers: List[Tuple[bytes, bytes]]) -> None:
        """
        Fill the request's head from the client's header block, as
        Twisted's does: C{:method} and C{:path} become the stream's
        C{command} and C{path}, C{:authority} a Host field where it stands
        (before any Host field the client sent), the other pseudo-header
        fields are dropped; then C{gotLength} with each Content-Length (or
        Twisted's guess when there is none), C{parseCookies}, and a 100
        (Continue) when the client expects one.
        """
        request = self._request
        fields = []
        lengths = []
        for name, value in headers:
            if name[:1] != b":":
                fields.append((name, value))
                if name == b"content-length":
                    lengths.append(value)
            elif name == b":method":
                self.command = value
            elif name == b":path":
                self.path = value
            elif name == b":authority":
                fields.append((b"host", value))
        add_fields(request.requestHeaders, fields)
        for length in lengths:
            request.gotLength(int(length))
        if not lengths:
            request.gotLength(0 if self.command in (b"GET", b"HEAD") else None)
        request.parseCookies()
        expect = request.requestHeaders.getRawHeaders(b"expect")
        if expect and expect[0].lower() == b"100-continue":
            self._send100Continue()
