"""
The resource of a route with a cache: it answers from the store what it
may (RFC 9111 section 4), and forwards the rest through a
L{CachingExchange}, coalescing concurrent misses.  A range request that
is forwarded has its answer stored (RFC 9111 section 3.3) but is never
coalesced: its 206 answers no other request.
"""

from __future__ import annotations

from typing import List, Tuple

from ..forward.resource import ReverseProxyResource
from ..server.answers import respond_with_error
from . import partial, policy
from .exchange import BackgroundRequest, CachingExchange
from .fetch import Fetch, request_fields
from .freshness import freshness
from .serve import cache_status, serve_stored
from .shared import SharedCache, request_key

Header = Tuple[bytes, bytes]

#: Request fields that make a request ask for something other than the
#: whole current response: such a request neither leads nor joins a
#: shared backend request on a miss (it is forwarded as it is), and the
#: cache replaces them with its own validators when it revalidates.
_PARTICULAR = (b"range", b"if-range", b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since")

#: The fields of L{_PARTICULAR} a revalidation of a partial response
#: keeps: the range asked for, and the client's If-Range, so that a
#: representation that changed comes whole rather than as a piece of the
#: new one (RFC 9110 section 13.1.5).
_RANGE = (b"range", b"if-range")


def _particular(fields: List[Header]) -> bool:
    return any(name.lower() in _PARTICULAR for name, _ in fields)


def _end_lookup(request, result: bytes, span) -> None:
    """
    End the span of a lookup, if the request has one, with its C{result},
    before the answer or the backend request.
    """
    if span is not None:
        request.trace.end_span(
            span,
            {
                "txrevproxy.cache.result": result.decode("ascii"),
                "txrevproxy.cache.hit": result == b"hit",
            },
        )


class CachingProxyResource(ReverseProxyResource):
    """
    A route's leaf that proxies through a shared cache.

    @ivar cache: the L{SharedCache} named by the route's C{cache}.
    """

    def __init__(self, target, cache: SharedCache) -> None:
        super().__init__(target)
        self.cache = cache

    def forward(self, request) -> None:
        method = request.method
        key = request_key(request)
        span = None if request.trace is None else request.trace.begin_span("cache lookup")
        if method != b"GET" and method != b"HEAD":
            self._pass(request, key, b"fwd=method", span)
        elif request.requestHeaders.hasHeader(b"upgrade"):
            # A WebSocket handshake wants the backend, never a stored page.
            self._pass(request, key, b"fwd=request", span)
        else:
            fields = request_fields(request)
            cache = self.cache
            filling = None if cache.shared is None else cache.filling(key)
            if filling is None:
                self._lookup(request, key, fields, span)
            else:
                self._lookupFilled(filling, request, key, fields, span)

    def _lookupFilled(self, filling, request, key: bytes, fields: List[Header], span) -> None:
        """
        Look up once the memory store has what the Redis store had (see
        L{SharedCache.filling}), unless the client is gone meanwhile.
        """
        gone: List[object] = []
        request.notifyFinish().addErrback(gone.append)

        def filled(_) -> None:
            if not gone:
                self._lookup(request, key, fields, span)

        filling.addCallback(filled)

    def _looked(self, request, result: bytes, span) -> None:
        """
        Count a lookup's C{result} (its Cache-Status word: C{hit},
        C{fwd=uri-miss} ...), and end its span (see L{_end_lookup}).
        """
        self.cache.metrics.lookups[result] += 1
        _end_lookup(request, result, span)

    def _pass(self, request, key: bytes, forwarded: bytes, span) -> None:
        """
        Forward a request the cache does not look up, saying why.
        """
        self._looked(request, forwarded, span)
        CachingExchange(request, self.target, self.cache, key, parameters=(forwarded,)).start()

    def _lookup(self, request, key: bytes, fields: List[Header], span) -> None:
        cache = self.cache
        metrics = cache.metrics
        directives = policy.request_cache_control(fields)
        stored, vary_miss = cache.select(key, fields)
        forwarded = b"fwd=vary-miss" if vary_miss else b"fwd=uri-miss"
        if stored is not None and not partial.answers(stored, request.method, fields):
            # A partial response lacking what is asked (RFC 9211's
            # "partial"): forwarded as on a miss, and the answer is stored
            # in its place or combined with it.
            stored, forwarded = None, b"fwd=partial"
        if stored is not None:
            known = freshness(stored, cache.targets, cache.settings.default_ttl)
            lifetime = known.lifetime
            age = known.age(cache.clock.seconds())
            decision = policy.decide(directives, known.directives, lifetime, age)
            if decision != policy.REVALIDATE:
                self._looked(request, b"hit", span)
                if decision != policy.FRESH:
                    metrics.stale += 1
                if decision == policy.STALE_REVALIDATE and not cache.fetching(key):
                    # Before answering: a finished request lets go of its
                    # connection, which the revalidation copies.
                    self._revalidateBehind(request, key, fields, stored)
                target = self.target
                metrics.bytes_served += serve_stored(
                    request,
                    stored,
                    age,
                    lifetime,
                    (b"hit",),
                    fields,
                    target.response_rules,
                    target.banners,
                    cache.targets,
                )
                return
            client_asked = b"no-cache" in directives or b"max-age" in directives or (
                b"min-fresh" in directives
            )
            forwarded = b"fwd=request" if client_asked else b"fwd=stale"
        if b"only-if-cached" in directives:
            self._looked(request, b"fwd=miss", span)
            request.responseHeaders.addRawHeader(
                *cache_status(b"fwd=miss", b"detail=only-if-cached")
            )
            respond_with_error(request, 504, cause="only_if_cached")
            return
        fetch = cache.fetches.get(key)
        particular = _particular(fields) and stored is None
        if fetch is not None and not particular and request.bodyComplete:
            _end_lookup(request, b"collapsed", span)
            fetch.join(request, fields)
            return
        self._looked(request, forwarded, span)
        ranged = request.method == b"GET" and policy.first_value(fields, b"range") is not None
        if ranged and request.bodyComplete and (stored is None or stored.status == 206):
            # Nothing stored, or a partial response: the range is asked
            # (with the stored validators, when it is stale) and its
            # answer stored, alone.
            if stored is not None:
                self._validate(request, stored)
            fetch = Fetch(cache, self.target, key, fields, stored, request, forwarded, False)
            CachingExchange(request, self.target, cache, key, fetch).start()
            return
        if request.method != b"GET" or particular or not request.bodyComplete:
            CachingExchange(
                request, self.target, cache, key, parameters=(forwarded,), stale=stored
            ).start()
            return
        if stored is not None:
            self._validate(request, stored)
        fetch = Fetch(cache, self.target, key, fields, stored, request, forwarded)
        CachingExchange(request, self.target, cache, key, fetch).start()

    def _validate(self, request, stored) -> None:
        """
        Make C{request} ask the backend whether C{stored} is still current
        (RFC 9111 section 4.3.1), instead of its own conditions; for a
        partial C{stored}, still for the range it asked.
        """
        headers = request.requestHeaders
        kept = _RANGE if stored.status == 206 else ()
        for name in _PARTICULAR:
            if name not in kept:
                headers.removeHeader(name)
        validators = policy.validators(stored.headers)
        for name, value in validators:
            headers.setRawHeaders(name, [value])
        if validators:
            self.cache.metrics.revalidations += 1

    def _revalidateBehind(self, request, key: bytes, fields: List[Header], stored) -> None:
        """
        Revalidate a stale response that was just served
        (stale-while-revalidate), with no client waiting.
        """
        background = BackgroundRequest(request)
        self._validate(background, stored)
        fetch = Fetch(
            self.cache, self.target, key, fields, stored, None, b"fwd=stale", stored.status != 206
        )
        CachingExchange(background, self.target, self.cache, key, fetch).start()
