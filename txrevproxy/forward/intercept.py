"""
Interception of backend errors (a route's C{intercept_errors}, nginx's
C{proxy_intercept_errors}): a backend response with one of those statuses
is not passed on.  The client gets the error page of that status at once
(the route's, else the listener's, else the proxy's own), with the status
and the request ID, and the backend's body (a legacy app's stack trace) is
read and dropped, so that the backend connection can be reused when its
framing allows.
"""

from __future__ import annotations

from typing import List, Tuple

from zope.interface import implementer

from ..interfaces import IBodyTransform
from ..server.answers import respond_with_error

#: The most body bytes of an intercepted response read and dropped; a
#: backend that sends more has its connection closed rather than drained.
DRAIN_LIMIT = 1024 * 1024


def _retry_after(headers: List[Tuple[bytes, bytes]]):
    """
    A backend 503's Retry-After in seconds, kept on the page; L{None}
    when it has none (or an HTTP date, which is not kept).
    """
    for name, value in headers:
        if name.lower() == b"retry-after" and value.strip().isdigit():
            return int(value)
    return None


@implementer(IBodyTransform)
class InterceptedBody:
    """
    The body transform of an intercepted response: nothing of the backend's
    body reaches the client, which has its error page already.
    """

    def __init__(self, exchange) -> None:
        self._exchange = exchange
        self._dropped = 0

    def transform(self, data: bytes) -> bytes:
        self._dropped += len(data)
        if self._dropped > DRAIN_LIMIT:
            # Not worth reading on: drop the backend connection instead.
            self._exchange.clientGone()
        return b""

    def finish(self) -> bytes:
        return b""


def intercept(exchange, request, status: int, headers) -> InterceptedBody:
    """
    Answer C{request} with the error page of the backend's C{status}
    instead of the backend's response, whose head is C{headers}.

    @return: the transform that drops the backend's body.
    """
    respond_with_error(request, status, retry_after=_retry_after(headers))
    return InterceptedBody(exchange)
