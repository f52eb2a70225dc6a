"""
The short answers the proxy gives when it cannot pass a response on.

Every one is plain text, names the status and the request ID (so an
operator can find the request in the logs), and carries neither a traceback
nor a backend address; or it is the page configured for its status, the
route's (L{ProxyRequest.error_pages}) before the listener's
(L{ProxySite.error_pages}).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..http.grpc import grpc_error_fields, is_grpc
from ..http.headers import http_date, serialize_head
from ..http.status import reason_phrase

Header = Tuple[bytes, bytes]
#: A configured error page: its body and its Content-Type.
Page = Tuple[bytes, bytes]

_CONTENT_TYPE = b"text/plain; charset=utf-8"

#: Statuses whose answers have no body, and no Content-Length either
#: (RFC 9110 sections 8.6 and 15.4.5).
_NO_BODY = frozenset([204, 304])

def error_body(code: int, request_id: bytes) -> bytes:
    """
    The body of an error answer.
    """
    return b"%d %s\nrequest id: %s\n" % (code, reason_phrase(code), request_id)


def error_page(request, code: int) -> Optional[Page]:
    """
    The page configured for C{code}: the route's, else the listener's, else
    L{None} (the proxy's own page).
    """
    pages = getattr(request, "error_pages", None)
    if pages is not None:
        page = pages.get(code)
        if page is not None:
            return page
    pages = getattr(request.site, "error_pages", None)
    return None if pages is None else pages.get(code)


def abort_response(request, reset: bool = False) -> None:
    """
    End a response that cannot be completed, so that the client sees it is
    incomplete: close after what was sent when the body's framing (its
    Content-Length or chunking) shows the truncation, and reset the
    connection when the body is delimited by the close itself.

    @param reset: reset the connection whatever the framing, as after a
        timeout: a close would wait for a client that does not read.
    """
    if request.producer is not None:
        request.unregisterProducer()
    transport = request.transport
    if request.truncationVisible and not reset:
        transport.loseConnection()
    else:
        transport.abortConnection()


def respond_with_error(
    request,
    code: int,
    retry_after: Optional[int] = None,
    close: bool = False,
    cause: Optional[str] = None,
) -> None:
    """
    Answer C{request} with a short error page, unless it is already
    answered or its client is gone.  When part of a response already went
    out, the client connection is aborted instead, so the client cannot
    mistake a truncated response for a complete one.

    The page is the one configured for C{code} (see L{error_page}), else a
    few lines of text.

    @param close: close the client connection after the answer, as for a
        request that broke the protocol.
    @param cause: for a 5xx, why (see C{ProxyRequest.error_cause}), which
        the error log tells; C{"error"} when not given.
    """
    if request.finished or request.disconnected:
        return
    if code >= 500:
        request.error_cause = cause or "error"
    if request.startedWriting:
        abort_response(request)
        return
    if is_grpc(request.requestHeaders.getRawHeaders(b"content-type", [None])[0]):
        grpc_answer(request, code, close)
        return
    page = error_page(request, code)
    if page is None:
        body = error_body(code, request.request_id)
        headers = [(b"Content-Type", _CONTENT_TYPE)]
    else:
        body, content_type = page
        headers = [(b"Content-Type", content_type)]
    if retry_after is not None:
        headers.append((b"Retry-After", b"%d" % (retry_after,)))
    send_answer(request, code, body, headers, close)


def grpc_answer(request, code: int, close: bool = False) -> None:
    """
    Answer a gRPC call with the gRPC status that stands for the error
    C{code} (see L{txrevproxy.http.grpc}), as Envoy does: a gRPC client
    cannot read an HTTP error page, and takes an HTTP error status for a
    broken server.  The answer is a 200 without messages whose trailers
    carry C{grpc-status} and C{grpc-message}; over HTTP/1.1, which gRPC
    clients do not speak, those go in the head.
    """
    fields = grpc_error_fields(
        code, b"%d %s (request id %s)" % (code, reason_phrase(code), request.request_id)
    )
    headers = [(b"Content-Type", b"application/grpc")]
    if request.clientproto == b"HTTP/2":
        send_answer(request, 200, b"", headers, close, trailers=fields)
    else:
        send_answer(request, 200, b"", headers + fields, close)


def send_answer(
    request,
    code: int,
    body: bytes,
    headers: List[Header],
    close: bool = False,
    trailers: Optional[List[Header]] = None,
) -> None:
    """
    Answer C{request} with a whole response made by the proxy itself (an
    error page, a redirect, a route's fixed response): C{headers}, then the
    ones every answer carries (Content-Length, X-Request-ID unless given,
    Date, the listener's Strict-Transport-Security, the proxy's own Server
    when it has one and C{headers} do not).  C{headers} may be
    changed by the response filters.

    @param close: close the client connection after the answer.
    @param trailers: trailer fields sent after the body (see
        C{ProxyRequest.writeTrailers}).
    """
    request.setResponseCode(code, reason_phrase(code))
    for each in request.response_filters:
        # The filters the request passed see the answer's head too (a
        # body transform they might offer is not used: answers are small
        # and sent whole).
        each.response(request, code, headers)
    response_headers = request.responseHeaders
    for name, value in headers:
        response_headers.addRawHeader(name, value)
    if code not in _NO_BODY:
        response_headers.setRawHeaders(b"Content-Length", [b"%d" % (len(body),)])
    if not response_headers.hasHeader(b"X-Request-ID"):
        response_headers.setRawHeaders(b"X-Request-ID", [request.request_id])
    site = request.site
    response_headers.setRawHeaders(b"Date", [http_date(site.reactor.seconds())])
    if site.hsts is not None:
        response_headers.setRawHeaders(b"Strict-Transport-Security", [site.hsts])
    server = site.server_header
    if server is not None and not response_headers.hasHeader(b"Server"):
        response_headers.setRawHeaders(b"Server", [server])
    if close:
        request.closeAfterResponse()
    else:
        request.closeIfBodyPending()
    request.write(body)
    if trailers is not None:
        request.writeTrailers(trailers)
    request.finish()


def connection_answer(
    code: int,
    request_id: bytes,
    now: float,
    hsts: Optional[bytes],
    page: Optional[Page] = None,
    server: Optional[bytes] = None,
) -> bytes:
    """
    The whole of an error answer (head and body) to a connection that gives
    up before it has a request object to answer through: a head it will not
    read any further, a client over its connection limit.  It carries what
    every answer does, and says the connection closes.

    @param now: the time, for the Date field.
    @param hsts: the listener's Strict-Transport-Security value, or L{None}.
    @param page: the listener's page for C{code}, or L{None}.
    @param server: the proxy's own Server value, or L{None}.
    """
    if page is None:
        body, content_type = error_body(code, request_id), _CONTENT_TYPE
    else:
        body, content_type = page
    fields = [
        (b"Content-Type", content_type),
        (b"Content-Length", b"%d" % (len(body),)),
        (b"X-Request-ID", request_id),
        (b"Date", http_date(now)),
    ]
    if hsts is not None:
        fields.append((b"Strict-Transport-Security", hsts))
    if server is not None:
        fields.append((b"Server", server))
    fields.append((b"Connection", b"close"))
    return serialize_head(b"HTTP/1.1 %d %s" % (code, reason_phrase(code)), fields) + body
