"""
The short answers the proxy gives when it cannot pass a response on.

Every one is plain text, names the status and the request ID (so an
operator can find the request in the logs), and carries neither a traceback
nor a backend address.
"""

from __future__ import annotations

from typing import Optional

from twisted.web.http import RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .headers import http_date

_CONTENT_TYPE = [b"text/plain; charset=utf-8"]

#: Reason phrases of RFC 9110 where they differ from Twisted's older ones.
_REASONS = {
    413: b"Content Too Large",
    504: b"Gateway Timeout",
}


def reason_phrase(code: int) -> bytes:
    """
    The RFC 9110 reason phrase of a status code.
    """
    return _REASONS.get(code) or RESPONSES.get(code, b"Error")


def error_body(code: int, request_id: bytes) -> bytes:
    """
    The body of an error answer.
    """
    return b"%d %s\nrequest id: %s\n" % (code, reason_phrase(code), request_id)


def abort_response(request) -> None:
    """
    End a response that cannot be completed, so that the client sees it is
    incomplete: close after what was sent when the body's framing (its
    Content-Length or chunking) shows the truncation, and reset the
    connection when the body is delimited by the close itself.
    """
    if request.producer is not None:
        request.unregisterProducer()
    transport = request.transport
    if request.truncationVisible:
        transport.loseConnection()
    else:
        transport.abortConnection()


def respond_with_error(
    request, code: int, retry_after: Optional[int] = None, close: bool = False
) -> None:
    """
    Answer C{request} with a short error page, unless it is already
    answered or its client is gone.  When part of a response already went
    out, the client connection is aborted instead, so the client cannot
    mistake a truncated response for a complete one.

    @param close: close the client connection after the answer, as for a
        request that broke the protocol.
    """
    if request.finished or request._disconnected:
        return
    if request.startedWriting:
        abort_response(request)
        return
    body = error_body(code, request.request_id)
    request.setResponseCode(code, reason_phrase(code))
    headers = request.responseHeaders
    headers.setRawHeaders(b"Content-Type", _CONTENT_TYPE)
    headers.setRawHeaders(b"Content-Length", [b"%d" % (len(body),)])
    headers.setRawHeaders(b"X-Request-ID", [request.request_id])
    site = request.site
    headers.setRawHeaders(b"Date", [http_date(site.reactor.seconds())])
    if site.hsts is not None:
        headers.setRawHeaders(b"Strict-Transport-Security", [site.hsts])
    if close:
        request.closeAfterResponse()
    else:
        request.closeIfBodyPending()
    if retry_after is not None:
        headers.setRawHeaders(b"Retry-After", [b"%d" % (retry_after,)])
    request.write(body)
    request.finish()


class ErrorResource(Resource):
    """
    A leaf that answers every request with one error status, such as the
    404 for a path no route covers.
    """

    isLeaf = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def render(self, request) -> int:
        respond_with_error(request, self.code)
        return NOT_DONE_YET
