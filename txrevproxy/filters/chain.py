"""
Running filters: the request phase (each filter lets the request through,
answers it, or holds it on a L{Deferred}) and the response phase (each
filter that let the request through sees the response head, and may
transform the body).

A request that no filter applies to never comes here, so routes without
filters pay nothing; filters that decide at once cost one call each and
no L{Deferred}.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ..interfaces import Answer, Header, IBodyTransform, IRequestHandler
from ..server.answers import error_body, error_page, respond_with_error, send_answer

log = Logger()

#: Request body bytes held while a filter decides, beyond which the
#: client is paused (the same bound as a backend connection being set up).
HOLD_LIMIT = 64 * 1024


@implementer(IRequestHandler)
class BodyHold:
    """
    The handler of a request's body while a filter is deciding on it: the
    bytes are kept, and the client is paused once they pass
    L{HOLD_LIMIT}, so that a decision that takes a while (a call to an
    authentication service) neither loses nor piles up body bytes.
    """

    def __init__(self, request) -> None:
        self._request = request
        self._chunks: List[bytes] = []
        self._size = 0
        self._finished = False
        request.handler = self

    def bodyReceived(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HOLD_LIMIT and self._size - len(data) <= HOLD_LIMIT:
            self._request.pauseReading()

    def bodyFinished(self) -> None:
        self._finished = True

    def bodyTooLarge(self) -> None:
        self._chunks = []
        send_error(self._request, 413)

    def clientGone(self) -> None:
        self._chunks = []

    def release(self) -> None:
        """
        Hand the bytes held to the request's handler now (the exchange
        the request went on to).  A client paused here stays paused: the
        exchange, holding more than the bound itself, pauses it too, and
        resumes it once the backend takes the body.
        """
        handler = self._request.handler
        if handler is self:
            return
        for chunk in self._chunks:
            handler.bodyReceived(chunk)
        self._chunks = []
        if self._finished:
            handler.bodyFinished()


def send_error(request, status: int) -> None:
    """
    The proxy's own error page, unless the request is already answered.
    """
    if request.finished or request.disconnected or request.startedWriting:
        return
    respond_with_error(request, status, cause="filter_error")


def answer(request, verdict: Answer) -> None:
    """
    Send a filter's answer.  One without a body gets the page configured
    for its status (see L{error_page}), else the proxy's own page.
    """
    if request.finished or request.disconnected or request.startedWriting:
        return
    headers = list(verdict.headers)
    body = verdict.body
    if not body:
        page = error_page(request, verdict.status)
        if page is None:
            body = error_body(verdict.status, request.request_id)
            content_type = b"text/plain; charset=utf-8"
        else:
            body, content_type = page
            headers = [field for field in headers if field[0].lower() != b"content-type"]
        if not any(name.lower() == b"content-type" for name, _ in headers):
            headers.append((b"Content-Type", content_type))
    send_answer(request, verdict.status, body, headers)


def run_filters(request, filters: Sequence, proceed) -> None:
    """
    Run C{filters} on C{request} in order; call C{proceed()} when every one
    lets it through.  The filters a request passed see its response head,
    whoever answers it (a backend, the proxy, a later filter).

    @param proceed: goes on with the request (routes it, or forwards it).
    """
    for index, each in enumerate(filters):
        try:
            verdict = each.request(request)
        except Exception:
            log.failure("filter {filter!r} failed", filter=each)
            request.passedFilters(filters[:index])
            send_error(request, 500)
            return
        if verdict is None:
            continue
        request.passedFilters(filters[:index])
        if isinstance(verdict, Answer):
            answer(request, verdict)
        else:
            _Waiting(request, filters, index, proceed).wait(verdict)
        return
    request.passedFilters(filters)
    proceed()


class _Waiting:
    """
    A filter chain held on the L{Deferred} of the filter at C{index}; a
    traced request has a span for the wait, named after the filter's
    class (C{filter ForwardAuth}).
    """

    _span = None

    def __init__(self, request, filters: Sequence, index: int, proceed) -> None:
        self._request = request
        self._filters = filters
        self._index = index
        self._proceed = proceed
        handler = request.handler
        self._hold = handler if isinstance(handler, BodyHold) else BodyHold(request)

    def wait(self, verdict) -> None:
        trace = self._request.trace
        if trace is not None:
            self._span = trace.begin_span(
                "filter " + type(self._filters[self._index]).__name__
            )
        verdict.addCallbacks(self._decided, self._failed)

    def _ended(self, outcome: str) -> None:
        """
        End the span of the wait with the filter's C{outcome}: C{"passed"},
        the status it answered with, or C{"failed"}.
        """
        if self._span is not None:
            self._request.trace.end_span(self._span, {"txrevproxy.filter.outcome": outcome})

    def _decided(self, verdict: Optional[Answer]) -> None:
        request = self._request
        self._ended("passed" if verdict is None else str(verdict.status))
        if request.finished or request.disconnected:
            return
        if verdict is not None:
            answer(request, verdict)
            return
        request.passedFilters(self._filters[self._index : self._index + 1])
        rest = self._filters[self._index + 1 :]
        hold = self._hold

        def proceed() -> None:
            self._proceed()
            hold.release()

        run_filters(request, rest, proceed)

    def _failed(self, reason: Failure) -> None:
        self._ended("failed")
        log.failure("filter failed", reason)
        send_error(self._request, 500)


def filter_response_head(
    request, status: int, headers: List[Header], length: Optional[int]
) -> Tuple[List[Header], Optional[int], Optional[IBodyTransform]]:
    """
    Apply the response filters of C{request} to a response head about to
    be written (by an exchange, or by the cache).

    @return: the head's fields and body length, and the transform every
        body byte must go through (L{None}: none); a transformed body has
        no Content-Length.
    """
    if not request.response_filters or status == 101:
        return headers, length, None
    transform = response_transform(request, status, headers)
    if transform is not None:
        headers = [field for field in headers if field[0].lower() != b"content-length"]
        length = None
    return headers, length, transform


def write_transformed(request, transform: IBodyTransform, data: bytes) -> None:
    """
    Write response body bytes to C{request} through a filter's transform.
    """
    data = transform.transform(data)
    if data:
        request.write(data)


def write_transformed_end(request, transform: IBodyTransform) -> None:
    """
    The body is complete: write what the transform still holds.
    """
    tail = transform.finish()
    if tail:
        request.write(tail)


def response_transform(
    request, status: int, headers: List[Header]
) -> Optional[IBodyTransform]:
    """
    Show a response head to the filters the request passed (they may
    change C{headers} in place), and collect their body transforms.

    @return: the transform every body byte must go through, or L{None}.
    """
    transforms = []
    for each in request.response_filters:
        transform = each.response(request, status, headers)
        if transform is not None:
            transforms.append(transform)
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]
    return _Pipeline(transforms)


@implementer(IBodyTransform)
class _Pipeline:
    """
    Several transforms, each fed what the one before produced.
    """

    def __init__(self, transforms: Sequence) -> None:
        self._transforms = transforms

    def transform(self, data: bytes) -> bytes:
        for each in self._transforms:
            data = each.transform(data)
        return data

    def finish(self) -> bytes:
        data = b""
        for each in self._transforms:
            if data:
                data = each.transform(data)
            data += each.finish()
        return data


class FilteredResource(Resource):
    """
    The resource of a route with filters: runs them, then lets the route's
    own resource (a forward, a redirect, a fixed answer) take the request.
    """

    isLeaf = True

    def __init__(self, filters: Sequence, resource) -> None:
        super().__init__()
        self.filters = tuple(filters)
        self.resource = resource

    def render(self, request):
        run_filters(request, self.filters, lambda: request.renderLeaf(self.resource))
        return NOT_DONE_YET
