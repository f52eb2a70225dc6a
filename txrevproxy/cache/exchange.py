"""
The exchange of a route with a cache: a L{ProxyExchange} that reports the
response to its L{Fetch} (which stores it and shares it with the waiting
requests) and invalidates stored responses after unsafe requests.

Routes without a cache use L{ProxyExchange} itself, so they pay nothing
for any of this.
"""

from __future__ import annotations

from typing import Optional, Set, Tuple


from ..forward.clientless import ClientlessRequest
from ..forward.exchange import RESPONDING, ProxyExchange
from ..server.request import new_request_id
from ..upstream.balancer import SUCCESS
from . import policy
from .fetch import Fetch
from .serve import cache_status


class CachingExchange(ProxyExchange):
    """
    A proxied request on a route with a cache.

    It goes through the states of L{ProxyExchange}, and adds to three of
    its transitions: to L{RESPONDING} (L{responseHead}), the L{Fetch}
    decides whether the client gets the response; to L{DONE} with an
    error (L{_answerFailure}), a stale response may stand in; and to
    L{DONE} in any way (L{_end}), the fetch hears it was abandoned unless
    it was told how it ended.

    When its L{Fetch} answers the client itself (from a refreshed or stale
    stored response), or the client went while others want the response,
    the exchange is "diverted": it stays in L{RESPONDING}, reads the
    backend's response to its end and passes nothing on.

    @ivar cache: the route's L{txrevproxy.cache.shared.SharedCache}.
    @ivar key: the request's primary cache key.
    @ivar fetch: the L{Fetch} fed with the response, or L{None} for a
        request whose response is not stored (unsafe methods, ranges,
        conditional requests on a miss).
    @ivar _stale: the stale stored response the request was forwarded
        instead of (its fetch's, or the C{stale} given for a HEAD or a
        range), or L{None}: when it forbids stale use, a backend failure
        is a 504.
    """

    _diverted = False
    #: What pauses the backend read now: this exchange itself (its
    #: client's connection is full) and the waiters whose connections are.
    _holds: Optional[Set[object]] = None

    def __init__(
        self,
        request,
        target,
        cache,
        key: bytes,
        fetch: Optional[Fetch] = None,
        parameters: Tuple[bytes, ...] = (),
        stale=None,
    ) -> None:
        super().__init__(request, target)
        self.cache = cache
        self.key = key
        self.fetch = fetch
        self._stale = stale if fetch is None else fetch.stored
        self._parameters = parameters
        if fetch is not None:
            fetch.exchange = self

    def responseHead(self, status, reason, headers, length) -> None:
        rewrite = self.target.response_rewrite
        if rewrite is not None:
            # The store keeps the response as the client sees it, and
            # invalidation reads its Location in the client's view: the
            # rewrite is done once, before either.
            headers = rewrite.apply(headers, self.request)
        method = self.request.method
        if method not in policy.SAFE_METHODS:
            targets = policy.invalidated_targets(method, status, headers)
            if targets is not None:
                self.cache.invalidate(self.key, targets)
        parameters: Optional[Tuple[bytes, ...]] = self._parameters
        fetch = self.fetch
        if fetch is not None:
            parameters = fetch.responded(status, reason, headers, length)
            if parameters is None:
                self._state = RESPONDING
                self._status = status
                self._diverted = True
                return
        if status != 101:
            headers = self.cache.targets.downstream(headers) + [cache_status(*parameters)]
        super().responseHead(status, reason, headers, length, True)

    def responseBody(self, data: bytes) -> None:
        fetch = self.fetch
        if fetch is not None:
            fetch.received(data)
        if not self._diverted:
            super().responseBody(data)

    def responseEnd(self) -> None:
        fetch = self.fetch
        if fetch is not None:
            self.fetch = None
            fetch.ended()
        if self._diverted:
            self._end()
        else:
            super().responseEnd()

    def _answerFailure(self, code, outcome=SUCCESS, retry_after=None) -> None:
        fetch = self.fetch
        if fetch is not None:
            self.fetch = None
            if fetch.failed():
                # It answered from a stale response (stale-if-error).
                self._end(abort_upstream=True, outcome=outcome)
                return
        stale = self._stale
        if stale is not None and policy.stale_forbidden(
            policy.response_cache_control(self.cache.targets.rule_fields(stale.headers))
        ):
            # RFC 9111 section 5.2.2.2: the stale response that must be
            # revalidated could not be, which is a 504 whatever failed.
            code, retry_after = 504, None
        super()._answerFailure(code, outcome, retry_after)

    def clientGone(self) -> None:
        fetch = self.fetch
        if fetch is not None:
            if fetch.leader is None:
                # No client to lose: a revalidation behind a stale answer,
                # or a client already gone (told twice: as the producer,
                # and as the request's handler).
                return
            if not self._diverted and fetch.shared():
                # Other clients, or the store, still want this response:
                # read it to its end for them.  The gone client may have
                # paused the backend read.
                self._diverted = True
                fetch.leader = None
                self.release(self)
                return
        super().clientGone()

    # Flow control: the backend read waits for the slowest client -------------

    def hold(self, source: object) -> None:
        """
        Pause the backend read until C{source} lets go: a client's
        connection (the leader's, or a waiter's) cannot take more now.
        """
        holds = self._holds
        if holds is None:
            holds = self._holds = set()
        if not holds and self._upstream is not None:
            self._upstream.transport.pauseProducing()
        holds.add(source)

    def release(self, source: object) -> None:
        """
        C{source} can take more (or is gone); the backend read resumes
        when nothing else holds it.
        """
        holds = self._holds
        if holds and source in holds:
            holds.discard(source)
            if not holds and self._upstream is not None:
                self._upstream.transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.hold(self)

    def resumeProducing(self) -> None:
        self.release(self)

    def _abortClient(self, outcome: str) -> None:
        if self._diverted:
            # The client has its answer already, or is gone: nothing of
            # this response is on its connection to cut short.
            self._end(abort_upstream=True, outcome=outcome)
        else:
            super()._abortClient(outcome)

    def _end(self, abort_upstream: bool = False, outcome: str = SUCCESS) -> None:
        # A fetch still set heard neither the end of the response nor the
        # failure before it: what it got will not be whole.
        fetch = self.fetch
        if fetch is not None:
            self.fetch = None
            fetch.abandoned()
        super()._end(abort_upstream, outcome)


class BackgroundRequest(ClientlessRequest):
    """
    The request of a revalidation made behind a stale answer
    (stale-while-revalidate): a GET copy of the client request that caused
    it, with a request ID of its own.  Its response goes to its L{Fetch}
    only.
    """

    def __init__(self, request) -> None:
        super().__init__(request, new_request_id())
        self.method = b"GET"
