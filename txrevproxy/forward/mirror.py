"""
A route's C{mirror}: a copy of each request (or of a share of them), with
its body, sent to another upstream, whose answer is read and dropped.

The copy never touches the client's request: the body streams to the real
backend as ever, and the copy keeps what passes, up to C{mirror_max_body};
it is sent once the body is complete, so the mirror's backend never slows
the client's upload, and a copy's memory is bounded.  A body longer than
the limit is not mirrored at all (a request with part of its body would
be another request).  The copy never waits in the mirror's balancer
queue, is bounded by C{mirror_timeout} whatever the mirror's upstream
allows, and its outcome is only counted
(C{txrevproxy_mirror_requests_total}) and logged at debug level.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import IRequestHandler
from ..upstream.balancer import SUCCESS, TIMEOUT
from .clientless import ClientlessRequest
from .exchange import RESPONDING, ProxyExchange

#: The outcomes of a copy (the C{result} label of the metric).
ANSWERED = "answered"
FAILED = "failed"
TIMED_OUT = "timeout"
NO_BACKEND = "no_backend"
TOO_LARGE = "too_large"
ABANDONED = "abandoned"


class MirrorExchange(ProxyExchange):
    """
    The exchange of a copy: a client request's, but it never waits for a
    backend, drops the response as it comes, and counts how it ended.

    @param count: called with the outcome (one of the module's results).
    """

    def __init__(self, request, target, count) -> None:
        super().__init__(request, target)
        self._count = count

    def _queue(self, balancer) -> None:
        self._answerFailure(503)

    def responseHead(self, status, reason, headers, length, rewritten=False) -> None:
        self._state = RESPONDING
        self._status = status

    def responseBody(self, data: bytes) -> None:
        pass

    def responseEnd(self) -> None:
        self._end()
        self._count(ANSWERED)

    def _answerFailure(
        self, code: int, outcome: str = SUCCESS, retry_after: Optional[int] = None
    ) -> None:
        self._end(abort_upstream=True, outcome=outcome)
        self._count({503: NO_BACKEND, 504: TIMED_OUT}.get(code, FAILED))

    def _abortClient(self, outcome: str) -> None:
        self._end(abort_upstream=True, outcome=outcome)
        self._count(FAILED)

    def _timedOut(self, kind: str) -> None:
        self._end(abort_upstream=True, outcome=TIMEOUT)
        self._count(TIMED_OUT)


class Mirror:
    """
    The mirror of one route.

    @param target: the L{txrevproxy.forward.resource.ProxyTarget} of the
        mirror's upstream (its timeouts capped by C{mirror_timeout}).
    @param route: the route's label, and C{upstream} the mirror's name,
        for the metric.
    @param percent: the share of requests copied.
    @param max_body: the longest request body copied.
    @param random: a L{random.Random}, injected so tests draw a known
        sequence.
    @param metrics: the L{txrevproxy.observe.metrics.Metrics} that counts
        the copies.
    """

    log = Logger()

    def __init__(
        self, target, route: str, upstream: str, percent: int, max_body: int, random, metrics
    ) -> None:
        self.target = target
        self.route = route
        self.upstream = upstream
        self.percent = percent
        self.max_body = max_body
        self._random = random
        self._metrics = metrics

    def copy(self, request) -> None:
        """
        Mirror C{request}, whose exchange is its handler already, when it
        is drawn: now if it has no body, else once its body is complete.
        """
        if self.percent < 100 and self._random.random() * 100 >= self.percent:
            return
        if request.requestedUpgrade() is not None:
            # A tunnel (WebSocket) cannot be copied.
            return
        length = request.bodyLength
        if length is not None and length > self.max_body:
            self.count(TOO_LARGE)
            return
        copy = ClientlessRequest(request, request.request_id)
        if request.bodyComplete and not request.bodyBytes:
            self.send(copy, ())
        else:
            _Tee(self, request, copy)

    def send(self, copy: ClientlessRequest, body: Sequence[bytes]) -> None:
        """
        Send C{copy} with its whole C{body}.  Whatever goes wrong is the
        copy's failure, never the client request's.
        """
        copy.bodyBytes = copy.bodyLength = sum(len(chunk) for chunk in body)
        # The copy's total deadline counts from now.
        copy.started = self.target.clock.seconds()
        exchange = MirrorExchange(copy, self.target, self.count)
        # Held before the exchange starts, the body is sent with the head.
        for chunk in body:
            exchange.bodyReceived(chunk)
        try:
            exchange.start()
        except Exception:
            self.log.failure(
                "mirror of route {route} to {upstream}",
                route=self.route,
                upstream=self.upstream,
            )
            self.count(FAILED)

    def count(self, result: str) -> None:
        """
        Count a copy's outcome.
        """
        self._metrics.mirrored(self.route, self.upstream, result)
        if result != ANSWERED:
            self.log.debug(
                "mirror of route {route} to {upstream}: {result}",
                route=self.route,
                upstream=self.upstream,
                result=result,
            )


@implementer(IRequestHandler)
class _Tee:
    """
    The handler of a mirrored request's body: passes each call on to the
    request's own handler (its exchange) and keeps a copy of the body, up
    to the mirror's limit, for the mirror.
    """

    def __init__(self, mirror: Mirror, request, copy: ClientlessRequest) -> None:
        self._mirror = mirror
        self._copy = copy
        self._chunks: Optional[List[bytes]] = []
        self._size = 0
        self._handler = request.handler
        request.handler = self

    def bodyReceived(self, data: bytes) -> None:
        self._handler.bodyReceived(data)
        chunks = self._chunks
        if chunks is None:
            return
        self._size += len(data)
        if self._size > self._mirror.max_body:
            self._chunks = None
            self._mirror.count(TOO_LARGE)
        else:
            chunks.append(data)

    def bodyFinished(self) -> None:
        self._handler.bodyFinished()
        chunks = self._chunks
        if chunks is not None:
            self._chunks = None
            self._mirror.send(self._copy, chunks)

    def bodyTooLarge(self) -> None:
        self._abandon()
        self._handler.bodyTooLarge()

    def clientGone(self) -> None:
        self._abandon()
        self._handler.clientGone()

    def _abandon(self) -> None:
        if self._chunks is not None:
            self._chunks = None
            self._mirror.count(ABANDONED)
