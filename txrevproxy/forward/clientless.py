"""
A request with no client behind it, which an exchange carries to a
backend like a client's: a cache's revalidation behind a stale answer, or
a mirror's copy of a client request.  Its response goes nowhere: the
exchange that carries it is diverted (it never writes to it), and
L{ClientlessRequest.finished} makes the exchange's error answers do
nothing.
"""

from __future__ import annotations

from twisted.web.http_headers import Headers
from zope.interface import implementer

from ..interfaces import IProxiedRequest
from ..server.request import DISCARD


@implementer(IProxiedRequest)
class ClientlessRequest:
    """
    A copy of the head of the client request C{request}: its method,
    target, fields and connection facts (which the request head sent to
    the backend is made of), with the request ID C{request_id} and no body.
    """

    handler = DISCARD
    bodyComplete = True
    bodyLength = 0
    bodyBytes = 0
    finished = True
    error_pages = None
    response_filters = ()
    timed_out = None
    error_cause = None
    error_detail = ""
    #: Not traced: no client waits on it (for the request tracing that
    #: reads C{request.trace} on the request's path).
    trace = None

    def __init__(self, request, request_id: bytes) -> None:
        self.method = request.method
        self.uri = request.uri
        self.path = request.path
        self.clientproto = request.clientproto
        self.connection = request.connection
        self.site = request.site
        self.request_id = request_id
        self.requestHeaders = Headers(
            {name: list(values) for name, values in request.requestHeaders.getAllRawHeaders()}
        )

    def pauseReading(self) -> None:
        """
        Nothing to pause: the body, if any, is all here.
        """

    def resumeReading(self) -> None:
        """
        Nothing to resume, as for L{pauseReading}.
        """

    def requestedUpgrade(self) -> None:
        """
        None: a request without a client never switches protocols.
        """
        return None

    def holdWrites(self) -> None:
        """
        Nothing to hold: there is no client.
        """
        return None

    def backendChosen(self, backend) -> None:
        """
        Nothing to record: it is not a client's request, so it is not in
        the access log nor the request metrics.
        """

    def backendAnswered(self) -> None:
        """
        Nothing to record, as for L{backendChosen}.
        """

    def writeResponseHead(self, code, reason, headers, length) -> None:
        """
        Nothing to write: there is no client.
        """

    def writeTrailers(self, trailers) -> None:
        """
        Nothing to write, as for the head.
        """

    def releaseHandler(self) -> None:
        """
        The exchange that was the handler ended: fall back to the class's
        L{DISCARD}, breaking the request-exchange cycle as
        L{txrevproxy.server.request.ProxyRequest.releaseHandler} does.
        """
        self.__dict__.pop("handler", None)
