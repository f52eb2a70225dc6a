"""
Request coalescing: one backend request for a cache key, whose response
the requests that arrive meanwhile share.

A L{Fetch} is made by the request that found nothing usable stored (the
leader), or behind a stale answer (stale-while-revalidate, with no
leader).  Requests for the same key that arrive while it is in flight
wait on it (L{Waiter}).  When the response head arrives, the fetch
decides (L{Fetch.responded}):

 - a 304 to its revalidation: the stored response is refreshed and every
   request is answered from it;
 - an error while a stale response may stand in (stale-if-error): every
   request is answered from the stale one;
 - a storable response: the leader gets it as it streams, each waiter
   whose Vary values match gets the same head and then every body chunk
   as it arrives, and the body is stored when complete;
 - anything else (uncacheable, too large, another Vary variant): the
   waiters go to the backend themselves.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import attr
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from ..forward.exchange import ProxyExchange
from ..http.headers import http_date
from ..interfaces import IBodyWriter
from ..server.answers import abort_response
from . import partial, policy
from .freshness import freshness
from .policy import Timing
from .serve import ClientResponse, cache_status, serve_stored, storable_headers
from .store import StoredResponse

Header = Tuple[bytes, bytes]


def request_fields(request) -> List[Header]:
    """
    A request's header fields as C{(name, value)} pairs.
    """
    return [
        (name, value)
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    ]


@implementer(IPushProducer)
class Waiter:
    """
    A client request waiting for another request's backend response.

    @ivar request: the client request.
    @ivar fields: its header fields.
    @ivar gone: whether its client went away.
    @ivar response: its L{ClientResponse}, once the shared response
        started.
    """

    response: Optional[ClientResponse] = None
    #: The exchange whose backend read waits for this waiter's connection,
    #: once the shared response streams to it.
    exchange = None

    def __init__(self, request, fields: List[Header]) -> None:
        self.request = request
        self.fields = fields
        self.gone = False
        request.notifyFinish().addErrback(self._clientGone)

    def _clientGone(self, reason) -> None:
        self.gone = True
        self.resumeProducing()

    def streamFrom(self, exchange, response: ClientResponse) -> None:
        """
        The shared response starts: this waiter's connection now paces
        the backend read, as a direct client's would.
        """
        self.response = response
        self.exchange = exchange
        self.request.registerProducer(self, True)

    def finish(self) -> None:
        self.request.unregisterProducer()
        self.response.finish()

    def pauseProducing(self) -> None:
        if self.exchange is not None:
            self.exchange.hold(self)

    def resumeProducing(self) -> None:
        if self.exchange is not None:
            self.exchange.release(self)

    def stopProducing(self) -> None:
        self.gone = True
        self.resumeProducing()


class Fetch:
    """
    One backend request in flight for a key; see the module docstring.

    @ivar key: the primary key.
    @ivar fields: the leader's own request fields (before the cache added
        its validators), for Vary and for its conditional fields.
    @ivar stored: the stored response being revalidated, or L{None}.
    @ivar leader: the leader's client request, or L{None} for a
        revalidation behind a stale answer.
    @ivar forwarded: why the leader was forwarded, the C{fwd} parameter
        of Cache-Status (C{b"fwd=uri-miss"} ...).
    @ivar coalescing: whether requests for the key wait for it: not for a
        range request's fetch (its 206 answers no other request), which
        only stores what it brings.
    """

    def __init__(
        self,
        cache,
        target,
        key: bytes,
        fields: List[Header],
        stored: Optional[StoredResponse],
        leader,
        forwarded: bytes,
        coalescing: bool = True,
    ) -> None:
        self.cache = cache
        self.target = target
        self.key = key
        self.fields = fields
        self.stored = stored
        self.leader = leader
        self.forwarded = forwarded
        self.coalescing = coalescing
        self.request_time = cache.clock.seconds()
        self._waiting: List[Waiter] = []
        self._streaming: List[Waiter] = []
        self._body: Optional[IBodyWriter] = None
        self._size = 0
        self._length: Optional[int] = None
        self._head: Optional[Tuple[int, bytes, List[Header], Tuple[bytes, ...], float]] = None
        self._closed = False
        self._forgotten = False
        #: The L{CachingExchange} that feeds it.
        self.exchange = None
        if coalescing:
            cache.fetches[key] = self
        else:
            cache.range_fetches.setdefault(key, set()).add(self)

    def join(self, request, fields: List[Header]) -> None:
        """
        Make C{request} wait for this fetch's response.
        """
        self.cache.metrics.lookups[b"collapsed"] += 1
        waiter = Waiter(request, fields)
        head = self._head
        if head is None:
            self._waiting.append(waiter)
            return
        # The response is already streaming: a waiter that matches gets
        # what arrived so far, then the rest with the others.
        status, reason, kept, fields, _ = head
        chunks = None if self._body is None else self._body.received()
        if chunks is None or policy.vary_values(fields, waiter.fields) != policy.vary_values(
            fields, self.fields
        ):
            self._sendOn(waiter)
            return
        self._startWaiter(waiter, status, reason, kept, self._length)
        for chunk in chunks:
            waiter.response.write(chunk)

    def forget(self) -> None:
        """
        Its URL was purged or invalidated while it was in flight: what it
        brings is still passed to the requests waiting for it, but not
        stored (it may be what the purge meant to remove).
        """
        self._forgotten = True
        if self._body is not None:
            self._body.discard()
            self._body = None

    # What the exchange reports -----------------------------------------------

    def responded(
        self, status: int, reason: bytes, headers: List[Header], length: Optional[int]
    ) -> Optional[Tuple[bytes, ...]]:
        """
        The backend's response head arrived.

        @return: the Cache-Status parameters of the response passed on to
            the leader; L{None} when the fetch answered the leader itself
            (or there is none), so the exchange passes nothing on.
        """
        cache = self.cache
        now = cache.clock.seconds()
        stored = self.stored
        if stored is not None and status == 304:
            refreshed = attr.evolve(
                stored,
                headers=tuple(
                    policy.updated_headers(list(stored.headers), storable_headers(headers))
                ),
                timing=Timing(self.request_time, now),
            )
            cache.metrics.revalidated += 1
            if not self._forgotten:
                cache.store.put(refreshed)
                cache.metrics.stores += 1
            self._answerAll(refreshed, (self.forwarded, b"fwd-status=304"))
            return None
        if (
            stored is not None
            and status in policy.ERROR_STATUSES
            and self._staleMayStandIn(now)
        ):
            self._answerAll(
                stored,
                (b"fwd=stale", b"fwd-status=%d" % (status,), b"detail=stale-if-error"),
            )
            return None
        settings = cache.settings
        uncacheable = policy.uncacheable_reason(
            b"GET",
            self.fields,
            status,
            cache.targets.rule_fields(headers),
            store_set_cookie=settings.store_set_cookie,
            heuristic=bool(settings.default_ttl),
        )
        if uncacheable is None and length is not None and length > settings.max_object_size:
            uncacheable = "too large"
        if uncacheable is None and status == 206 and length is not None:
            first, last, _ = policy.content_range(headers)
            if length != last + 1 - first:
                uncacheable = "content-range"
        forwarded: Tuple[bytes, ...] = (self.forwarded,)
        if stored is not None:
            forwarded += (b"fwd-status=%d" % (status,),)
        if uncacheable is not None:
            self._sendWaitersOn()
            self._close()
            return None if self.leader is None else forwarded
        fields = policy.vary_fields(headers) or ()
        kept = storable_headers(headers)
        if policy.http_date(policy.first_value(kept, b"date")) is None:
            # RFC 9110 section 6.6.1: a cache adds the Date it received
            # the response at (replacing an invalid one), which its
            # Expires and age are counted from.
            kept = [pair for pair in kept if pair[0].lower() != b"date"]
            kept.append((b"Date", http_date(now)))
        self._head = (status, reason, kept, fields, now)
        self._length = length
        if not self._forgotten:
            self._body = cache.store.writer()
        leader_values = policy.vary_values(fields, self.fields)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if waiter.gone:
                continue
            if policy.vary_values(fields, waiter.fields) != leader_values:
                self._sendOn(waiter)
                continue
            self._startWaiter(waiter, status, reason, kept, length)
        return None if self.leader is None else forwarded + (b"stored",)

    def shared(self) -> bool:
        """
        Whether the response streaming now is wanted by more than its
        leader: it is being stored, or waiters are getting it.
        """
        return self._body is not None or any(
            not waiter.gone for waiter in self._streaming
        )

    def received(self, data: bytes) -> None:
        """
        Body bytes arrived: keep them while the body fits the cache, and
        pass them to the waiters that got the head.
        """
        body = self._body
        if body is not None:
            self._size += len(data)
            if self._size > self.cache.settings.max_object_size:
                body.discard()
                self._body = None
            else:
                body.write(data)
        for waiter in self._streaming:
            if not waiter.gone:
                waiter.response.write(data)

    def ended(self) -> None:
        """
        The response is complete: store it, and finish the waiters.
        """
        if self._closed:
            return
        writer = self._body
        if writer is not None:
            self._body = None
            status, reason, kept, fields, received_at = self._head
            piece = policy.content_range(kept) if status == 206 else None
            if piece is not None and self._size != piece[1] + 1 - piece[0]:
                # A chunked piece that is not the range it says it is.
                writer.discard()
            else:
                body = writer.close()
                stored = StoredResponse(
                    key=self.key,
                    vary_fields=fields,
                    vary_values=policy.vary_values(fields, self.fields),
                    status=status,
                    reason=reason,
                    headers=tuple(kept),
                    body=body,
                    timing=Timing(self.request_time, received_at),
                )
                if piece is not None:
                    stored = partial.piece(stored, piece[0], piece[2])
                self.cache.keep(stored)
                self.cache.metrics.bytes_stored += len(body)
        for waiter in self._streaming:
            if not waiter.gone:
                waiter.finish()
        self._close()

    def failed(self) -> bool:
        """
        The backend request failed before a response arrived.

        @return: whether the leader was answered (from a stale response,
            stale-if-error); otherwise the exchange answers it with the
            error, and the waiters go to the backend themselves.
        """
        if self._closed:
            return False
        stored = self.stored
        if stored is not None and self._staleMayStandIn(self.cache.clock.seconds()):
            self._answerAll(stored, (b"fwd=stale", b"detail=stale-if-error"))
            return True
        self._sendWaitersOn()
        self._close()
        return False

    def abandoned(self) -> None:
        """
        The backend request ended without a complete response (the backend
        broke, or the leader's client went away): the waiters that got
        part of it see it cut short, the others go to the backend.
        """
        if self._closed:
            return
        for waiter in self._streaming:
            if not waiter.gone:
                abort_response(waiter.request)
        self._sendWaitersOn()
        self._close()

    # Answering ------------------------------------------------------------

    def _staleMayStandIn(self, now: float) -> bool:
        cache = self.cache
        known = freshness(self.stored, cache.targets, cache.settings.default_ttl)
        return policy.stale_if_error_allows(
            policy.request_cache_control(self.fields),
            known.directives,
            known.lifetime,
            known.age(now),
        )

    def _answerAll(self, stored: StoredResponse, parameters: Tuple[bytes, ...]) -> None:
        """
        Answer the leader and every waiter whose Vary values match from
        C{stored}; the others go to the backend.
        """
        cache = self.cache
        known = freshness(stored, cache.targets, cache.settings.default_ttl)
        age = known.age(cache.clock.seconds())
        lifetime = known.lifetime
        rules = self.target.response_rules
        metrics = cache.metrics
        if b"detail=stale-if-error" in parameters:
            metrics.stale += 1
        if self.leader is not None:
            metrics.bytes_served += serve_stored(
                self.leader,
                stored,
                age,
                lifetime,
                parameters,
                self.fields,
                rules,
                self.target.banners,
                cache.targets,
            )
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if waiter.gone:
                continue
            if stored.vary_values != policy.vary_values(stored.vary_fields, waiter.fields):
                self._sendOn(waiter)
                continue
            metrics.bytes_served += serve_stored(
                waiter.request,
                stored,
                age,
                lifetime,
                parameters + (b"collapsed",),
                waiter.fields,
                rules,
                self.target.banners,
                cache.targets,
            )
        self._close()

    def _startWaiter(
        self,
        waiter: Waiter,
        status: int,
        reason: bytes,
        kept: List[Header],
        length: Optional[int],
    ) -> None:
        banners = self.target.banners
        headers = self.cache.targets.downstream(
            [pair for pair in kept if pair[0].lower() not in banners]
        )
        if length is not None:
            headers.append((b"Content-Length", b"%d" % (length,)))
        headers.append(cache_status(self.forwarded, b"collapsed"))
        rules = self.target.response_rules
        if rules is not None:
            headers = rules.apply(headers, waiter.request)
        waiter.streamFrom(
            self.exchange, ClientResponse(waiter.request, status, reason, headers, length)
        )
        self._streaming.append(waiter)

    def _sendWaitersOn(self) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.gone:
                self._sendOn(waiter)

    def _sendOn(self, waiter: Waiter) -> None:
        """
        Let a waiter make its own backend request, uncached.
        """
        ProxyExchange(waiter.request, self.target).start()

    def _close(self) -> None:
        self._closed = True
        if self._body is not None:
            self._body.discard()
            self._body = None
        cache = self.cache
        if cache.fetches.get(self.key) is self:
            del cache.fetches[self.key]
        ranged = cache.range_fetches.get(self.key)
        if ranged is not None:
            ranged.discard(self)
            if not ranged:
                del cache.range_fetches[self.key]
