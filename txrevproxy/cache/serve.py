"""
Answering a client from a stored response: whole, as a 304 to its
conditional request, or as the byte range it asked for; with C{Age} and
C{Cache-Status} (RFC 9211).
"""

from __future__ import annotations

from typing import IO, List, Optional, Tuple

from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from ..filters.chain import (
    filter_response_head,
    write_transformed,
    write_transformed_end,
)
from ..http.headers import client_response_headers
from ..http.status import reason_phrase
from ..server.answers import abort_response
from . import partial, policy
from .store import StoredResponse

Header = Tuple[bytes, bytes]

#: The name this cache goes by in Cache-Status.
CACHE_NAME = b"txrevproxy"

#: Fields the cache never keeps: Set-Cookie (another user's cookie).
_NOT_STORED = frozenset([b"set-cookie"])


def storable_headers(headers: List[Header]) -> List[Header]:
    """
    The fields of a backend response that the cache keeps: its
    end-to-end fields without Content-Length or Set-Cookie.  Age stays,
    for the age calculation, and is replaced in every answer.  The
    backend's banners stay too: each route that serves the response drops
    them or not (see L{serve_stored}).
    """
    return [
        (name, value)
        for name, value in client_response_headers(headers, False)
        if name.lower() not in _NOT_STORED
    ]


def cache_status(*parameters: bytes) -> Header:
    """
    A Cache-Status field (RFC 9211): this cache's name, then the
    parameters (C{b"hit"}, C{b"fwd=uri-miss"}, C{b"ttl=30"} ...).
    """
    return (b"Cache-Status", b"; ".join((CACHE_NAME,) + parameters))


def serve_stored(
    request,
    stored: StoredResponse,
    age: float,
    lifetime: float,
    status_parameters: Tuple[bytes, ...],
    request_headers: List[Header],
    response_rules=None,
    banners: frozenset = frozenset(),
    targets=None,
) -> int:
    """
    Answer C{request} from C{stored} and finish it.  A partial C{stored}
    (a 206) answers only the requests L{partial.answers} allows: the
    range is taken from its pieces.

    @param age: the stored response's current age, in seconds.
    @param lifetime: its freshness lifetime, for the C{ttl} of
        Cache-Status (negative once stale).
    @param status_parameters: what Cache-Status says besides the name and
        the ttl.
    @param request_headers: the client's own request fields (its
        conditional and Range fields decide the answer).
    @param response_rules: the route's response header rules, or L{None}.
    @param banners: the lower-cased names of the backend banners the
        route drops (see L{txrevproxy.forward.resource.ProxyTarget}).
    @param targets: the cache's L{txrevproxy.cache.targeted.Targets}, which
        may remove the targeted field it used; L{None}: none.
    @return: the body bytes of the answer, for the cache's metrics.
    """
    headers = []
    for pair in stored.headers:
        lname = pair[0].lower()
        if lname != b"age" and lname not in banners:
            headers.append(pair)
    if targets is not None:
        headers = targets.downstream(headers)
    headers.append((b"Age", b"%d" % (int(age),)))
    headers.append(
        cache_status(*status_parameters + (b"ttl=%d" % (int(lifetime - age),),))
    )
    if response_rules is not None:
        headers = response_rules.apply(headers, request)
    body = stored.body
    status = stored.status
    ranged = status == 200 or status == 206
    if ranged and policy.not_modified(list(stored.headers), request_headers):
        headers = [
            (name, value)
            for name, value in headers
            if name.lower() in policy.NOT_MODIFIED_FIELDS
            or name.lower() in (b"age", b"cache-status")
        ]
        return _answer(request, 304, headers, b"")
    if ranged:
        length = partial.representation_length(stored)
        chosen = policy.byte_range(
            policy.first_value(request_headers, b"range"),
            policy.first_value(request_headers, b"if-range"),
            list(stored.headers),
            length,
        )
        if chosen is not None:
            first, last = chosen
            if first == length:
                headers.append((b"Content-Range", b"bytes */%d" % (length,)))
                return _answer(request, 416, headers, b"")
            headers.append(
                (b"Content-Range", b"bytes %d-%d/%d" % (first, last, length))
            )
            return _answer(request, 206, headers, body, first, last + 1 - first)
    return _answer(request, status, headers, body, reason=stored.reason)


class ClientResponse:
    """
    A response the cache writes to a client itself (an answer from the
    store, or a shared response streamed to a waiting request) rather
    than passing it through an exchange: the one place those answers are
    written, so that what the exchange does to every response head and
    body on its way to the client applies here too.
    """

    def __init__(
        self, request, status: int, reason: bytes, headers: List[Header], length: Optional[int]
    ) -> None:
        self.request = request
        headers, length, self._transform = filter_response_head(
            request, status, headers, length
        )
        request.writeResponseHead(status, reason, headers, length)

    def write(self, data: bytes) -> None:
        if self._transform is None:
            self.request.write(data)
        else:
            write_transformed(self.request, self._transform, data)

    def finish(self) -> None:
        if self._transform is not None:
            write_transformed_end(self.request, self._transform)
        self.request.finish()


def _answer(
    request,
    status: int,
    headers: List[Header],
    body,
    first: int = 0,
    count: Optional[int] = None,
    reason: Optional[bytes] = None,
) -> int:
    """
    Send C{count} bytes of C{body} from C{first} (all of it by default):
    at once from memory, or read from a file as the client takes them.

    A body from memory goes with its head in one write (see
    L{txrevproxy.server.request.ProxyRequest.holdWrites}): a hit is
    answered within the read of its request, where nothing else gathers
    the writes.  Apart, the two sends were a third of a small hit's CPU
    time on PyPy, and the body, with no C{TCP_NODELAY} on the client
    connection, could wait for the head's acknowledgement.

    @return: the body bytes sent (none to a HEAD).
    """
    if count is None:
        count = len(body)
    sent = 0 if request.method == b"HEAD" else count
    source = None
    if sent and not isinstance(body, bytes):
        source = body.open()
        source.seek(first)
    if status not in (204, 304):
        headers.append((b"Content-Length", b"%d" % (count,)))
    if source is not None:
        response = ClientResponse(
            request, status, reason or reason_phrase(status), headers, count
        )
        FileProducer(response, source, count).start()
        return sent
    release = request.holdWrites()
    try:
        response = ClientResponse(
            request, status, reason or reason_phrase(status), headers, count
        )
        if count and isinstance(body, bytes):
            response.write(body[first : first + count])
        response.finish()
    finally:
        if release is not None:
            release()
    return sent


@implementer(IPullProducer)
class FileProducer:
    """
    Sends a part of a file to a client one chunk at a time, each when the
    connection has taken the previous one, as C{twisted.web.static.File}
    does: a body on disk is never whole in memory.
    """

    chunk_size = 64 * 1024

    def __init__(self, response: ClientResponse, source: IO[bytes], count: int) -> None:
        self._response = response
        self._source = source
        self._left = count

    def start(self) -> None:
        self._response.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self._source is None:
            return
        data = self._source.read(min(self.chunk_size, self._left))
        self._left -= len(data)
        if data:
            self._response.write(data)
        if not data or not self._left:
            self.stopProducing()
            self._response.request.unregisterProducer()
            if self._left:
                # The file is shorter than it was: never pass a truncated
                # body off as complete.
                abort_response(self._response.request)
            else:
                self._response.finish()

    def stopProducing(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
