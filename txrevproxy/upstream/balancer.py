"""
Choosing a backend for each request, and the backend state that choice
depends on.

L{Balancer.acquire} returns a L{Deferred} that fires with a L{Lease} on one
backend; the proxy releases the lease with the exchange's outcome when it is
over.  Which backend is chosen among those that may take a request is the
upstream's policy (an L{IBackendPicker}, see L{txrevproxy.upstream.policies}); which
backends may take one is decided here: healthy (see L{txrevproxy.upstream.health}),
not ejected for failing requests (outlier detection), not draining, and
below their C{max_connections}.  When every such backend is at its limit
the Deferred waits in a FIFO queue, bounded in length and in time.

The common case (no limits reached, no retry) costs one call of the picker
and one L{Lease}: the list of eligible backends is worked out when their
state changes, not per request.
"""

from __future__ import annotations

import math
from collections import deque
from hashlib import blake2b
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger, LogLevel

from ..config.model import BackendServer, Sticky, Upstream
from ..http.headers import cookie_value
from ..interfaces import IBackendsChanged
from .pool import ConnectionPool

#: Outcomes of an exchange, as L{Lease.release} reports them.  Compared by
#: identity on the hot path.
SUCCESS = "success"
#: The connection could not be made (refused, unreachable, timed out).
CONNECT_FAILED = "connect_failed"
#: The connection broke, or the backend sent something that is not HTTP.
BROKEN = "broken"
#: No response within the upstream's C{response_timeout}.
TIMEOUT = "timeout"
#: The client went away or broke the request: nothing learned of the backend.
ABANDONED = "abandoned"

#: Retries in progress that are always allowed, whatever the budget, so
#: that a quiet upstream can still retry (Envoy's min_retry_concurrency).
MIN_RETRIES = 3

#: The share of its weight a backend starts a slow start with.
SLOW_START_FLOOR = 0.1

#: Weight of the newest sample in a backend's smoothed latency.
_LATENCY_SMOOTHING = 0.2


class NoBackendAvailable(Exception):
    """
    No backend could take the request: every one is draining, or the queue
    is full, or the request waited its C{queue_timeout}.  The client gets
    503 with a Retry-After of L{retry_after} seconds.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__("no backend available")
        self.retry_after = retry_after


class Backend:
    """
    The runtime state of one backend server.

    @ivar server: its configuration.
    @ivar pool: its keep-alive connections.
    @ivar weight: its configured weight.
    @ivar limit: its C{max_connections}, C{0} for none.
    @ivar in_flight: exchanges it is carrying now.
    @ivar healthy: whether active health checks pass (or none are made).
    @ivar draining: whether it is kept from new requests by an operator.
    @ivar ejected_until: when its current ejection ends; C{0.0}: not ejected.
    @ivar ejected_for: how long its latest ejection lasted (or lasts).
    @ivar returned_at: when its latest ejection ended.
    @ivar ejections: how many times it was ejected.
    @ivar failures: requests it failed in a row.
    @ivar ramp_until: when its slow start ends; C{0.0}: not ramping.
    @ivar latency: smoothed seconds from lease to release of its
        successful exchanges.
    @ivar last_check: a sentence about its latest health check, or L{None}.
    """

    __slots__ = (
        "server",
        "pool",
        "weight",
        "limit",
        "in_flight",
        "healthy",
        "draining",
        "ejected_until",
        "ejected_for",
        "returned_at",
        "ejections",
        "failures",
        "ramp_until",
        "latency",
        "last_check",
        "_clock",
        "_slow_start",
        "_ejection",
    )

    def __init__(
        self,
        server: BackendServer,
        pool: ConnectionPool,
        clock,
        slow_start: float = 0.0,
    ) -> None:
        self.server = server
        self.pool = pool
        self.weight = server.weight
        self.limit = server.max_connections
        self.in_flight = 0
        self.healthy = True
        self.draining = server.drain
        self.ejected_until = 0.0
        self.ejected_for = 0.0
        self.returned_at = 0.0
        self.ejections = 0
        self.failures = 0
        self.ramp_until = 0.0
        self.latency = 0.0
        self.last_check: Optional[str] = None
        self._clock = clock
        self._slow_start = slow_start
        self._ejection = None

    def current_weight(self) -> float:
        """
        Its weight now: during a slow start, a share of its weight growing
        from L{SLOW_START_FLOOR} to all of it.
        """
        ramp_until = self.ramp_until
        if ramp_until:
            left = ramp_until - self._clock.seconds()
            if left > 0:
                return self.weight * max(SLOW_START_FLOOR, 1.0 - left / self._slow_start)
            self.ramp_until = 0.0
        return self.weight

    def start_ramp(self) -> None:
        """
        It just came back: ramp its weight up over the slow start period.
        """
        if self._slow_start:
            self.ramp_until = self._clock.seconds() + self._slow_start


class Lease:
    """
    The right to send one request to L{backend}; release it exactly once.

    @ivar set_cookie: a Set-Cookie value that binds the client to
        L{backend} (sticky sessions), or L{None}.
    """

    __slots__ = ("backend", "set_cookie", "_balancer", "_started", "_retry")

    def __init__(
        self, balancer: Balancer, backend: Backend, set_cookie: Optional[bytes], retry: bool
    ) -> None:
        self.backend = backend
        self.set_cookie = set_cookie
        self._balancer = balancer
        self._started = balancer.clock.seconds()
        self._retry = retry

    def release(self, outcome: str = SUCCESS, status: int = 0) -> None:
        """
        The exchange is over.

        @param outcome: L{SUCCESS} when a whole response was relayed (or a
            tunnel closed), else the failure: L{CONNECT_FAILED},
            L{BROKEN}, L{TIMEOUT}, or L{ABANDONED} when the client's doing.
        @param status: the response status, when there was one; a 5xx
            counts as a failure for outlier detection.
        """
        self._balancer._release(self, outcome, status)


class _Waiter:
    """
    A request waiting in a L{Balancer}'s queue.
    """

    __slots__ = ("request", "deferred", "timer")

    def __init__(self, request) -> None:
        self.request = request
        self.deferred: Optional[Deferred] = None
        self.timer = None


class _StickySessions:
    """
    Sticky sessions by cookie: a client that carries the cookie of a
    backend that can take its request goes there; any other gets the
    policy's choice and the cookie of that backend.

    A cookie holds a hash of the backend's URL, so it survives reloads and
    reveals no address.
    """

    def __init__(self, sticky: Sticky, backends: Sequence[Backend]) -> None:
        self._name = sticky.cookie.encode("ascii")
        self._attributes = b"; Path=/; HttpOnly"
        if sticky.ttl is not None:
            self._attributes += b"; Max-Age=%d" % (max(1, int(sticky.ttl)),)
        self._backends: Dict[bytes, Backend] = {}
        self.set_cookie: Dict[Backend, bytes] = {}
        for backend in backends:
            self.add(backend)

    def _value(self, backend: Backend) -> bytes:
        url = backend.server.url.encode("utf-8")
        return blake2b(url, digest_size=8).hexdigest().encode("ascii")

    def add(self, backend: Backend) -> None:
        """
        Bind clients to a backend that joined the upstream.
        """
        value = self._value(backend)
        self._backends[value] = backend
        self.set_cookie[backend] = self._name + b"=" + value + self._attributes

    def discard(self, backend: Backend) -> None:
        """
        Forget a backend that left: its clients get another.
        """
        del self._backends[self._value(backend)]
        del self.set_cookie[backend]

    def find(self, request, candidates: Sequence[Backend]) -> Optional[Backend]:
        """
        The backend the request's cookie names, if it is a candidate.
        """
        value = cookie_value(request.requestHeaders.getRawHeaders(b"cookie"), self._name)
        backend = self._backends.get(value) if value is not None else None
        return backend if backend in candidates else None


def _preferred(available: Sequence[Backend]) -> Tuple[Backend, ...]:
    """
    The backends of C{available} that take requests: the primary ones, or
    the C{backup} ones when no primary is available (HAProxy's C{backup}
    servers), so that a primary coming back takes new requests again.
    """
    primaries = tuple(backend for backend in available if not backend.server.backup)
    return primaries or tuple(available)


class Balancer:
    """
    The backends of one upstream and the choice among them.

    @ivar upstream: the upstream's configuration.
    @ivar backends: every backend, in configuration order.
    @ivar clock: the reactor's clock.
    @ivar in_flight: exchanges in progress on all backends.
    @ivar retries: how many other backends a failed request may try.
    @ivar retried: how many retries were made (for metrics).
    @ivar queue_timeouts: how many requests waited C{queue_timeout} in
        vain (for metrics).
    @ivar leaving: the backends that left the upstream (their address
        left the DNS) and still carry exchanges; each is closed when its
        last one is over.
    @ivar lookups: what finds backends in the DNS for it (each with a
        C{state()}), for L{state}.
    @ivar awaiting: how many DNS lookups have not answered once yet;
        while one has not, a request that finds no backend waits in the
        queue for it rather than being answered 503.
    @param remake_picker: makes the picker again for a new list of
        backends, for a picker that does not follow changes itself (see
        L{IBackendsChanged}); L{None}: the picker copes as it is.
    """

    log = Logger()

    def __init__(
        self,
        upstream: Upstream,
        backends: Sequence[Backend],
        picker,
        clock,
        remake_picker: Optional[Callable[[Sequence[Backend]], Any]] = None,
    ) -> None:
        self.upstream = upstream
        self.backends = tuple(backends)
        self.leaving: List[Backend] = []
        self.lookups: List[Any] = []
        self.awaiting = 0
        self.clock = clock
        self._remake_picker = remake_picker
        self.in_flight = 0
        self.retries = upstream.retries
        self._picker = picker
        self._sticky = (
            _StickySessions(upstream.sticky, self.backends)
            if upstream.sticky is not None
            else None
        )
        self._outlier = upstream.outlier
        self._count_5xx = upstream.outlier is None or upstream.outlier.count_5xx
        self._retry_after = max(1, math.ceil(upstream.queue_timeout))
        self._queue: Deque[_Waiter] = deque()
        self._full = 0
        self._retrying = 0
        self.retried = 0
        self.queue_timeouts = 0
        self._eligible: Sequence[Backend] = ()
        self._update()

    # Choosing ---------------------------------------------------------------

    def acquire(self, request, tried: Optional[Sequence[Backend]] = None) -> Deferred:
        """
        A lease on a backend for C{request}.

        @param tried: for a retry, the backends the request already failed
            on; they are not chosen again, and a retry never waits in the
            queue.
        @return: a L{Deferred} firing with a L{Lease}, at once when a
            backend can take the request, else when one can; or failing
            with L{NoBackendAvailable}.  Cancelling it takes the request out
            of the queue.
        """
        if tried is None:
            lease = self.lease_now(request)
            if lease is not None:
                return succeed(lease)
            if (self._eligible or self.awaiting) and len(
                self._queue
            ) < self.upstream.queue_size:
                return self._wait(request)
        else:
            candidates = self._open(tried)
            if candidates:
                return succeed(self._lease(request, candidates, True))
        return fail(NoBackendAvailable(self._retry_after))

    def lease_now(self, request) -> Optional[Lease]:
        """
        The direct path of L{acquire} for a first attempt: a lease when a
        backend can take C{request} now, else L{None} (then call
        L{acquire}, which queues).  The hot path uses it to go without a
        L{Deferred} when there is nothing to wait for.
        """
        candidates = self._open(None) if self._full else self._eligible
        if candidates:
            return self._lease(request, candidates, False)
        return None

    def may_retry(self) -> bool:
        """
        Whether the retry budget allows one more retry now: retries in
        progress stay within C{retry_budget} percent of the requests in
        progress, or L{MIN_RETRIES}, so that a failing upstream is not hit
        with a storm of retries.
        """
        allowed = max(MIN_RETRIES, self.in_flight * self.upstream.retry_budget / 100.0)
        return self._retrying < allowed

    def _open(self, tried: Optional[Sequence[Backend]]) -> Sequence[Backend]:
        """
        The eligible backends below their limit and not in C{tried}.
        """
        return tuple(
            backend
            for backend in self._eligible
            if not (backend.limit and backend.in_flight >= backend.limit)
            and (tried is None or backend not in tried)
        )

    def _lease(self, request, candidates: Sequence[Backend], retry: bool) -> Lease:
        sticky = self._sticky
        set_cookie = None
        if sticky is None:
            backend = self._picker.pick(request, candidates)
        else:
            backend = sticky.find(request, candidates)
            if backend is None:
                backend = self._picker.pick(request, candidates)
                set_cookie = sticky.set_cookie[backend]
        backend.in_flight += 1
        if backend.in_flight == backend.limit:
            self._full += 1
        self.in_flight += 1
        if retry:
            self._retrying += 1
            self.retried += 1
        return Lease(self, backend, set_cookie, retry)

    def _release(self, lease: Lease, outcome: str, status: int) -> None:
        backend = lease.backend
        if backend.in_flight == backend.limit:
            self._full -= 1
        backend.in_flight -= 1
        self.in_flight -= 1
        if lease._retry:
            self._retrying -= 1
        if not backend.in_flight and backend in self.leaving:
            self._gone(backend)
        if outcome is SUCCESS and (status < 500 or not self._count_5xx):
            backend.failures = 0
            backend.latency += (
                self.clock.seconds() - lease._started - backend.latency
            ) * _LATENCY_SMOOTHING
        elif outcome is not ABANDONED:
            backend.failures += 1
            outlier = self._outlier
            if outlier is not None and backend.failures >= outlier.consecutive_failures:
                self._eject(backend)
        if self._queue:
            self._serveQueue()

    # Waiting ----------------------------------------------------------------

    def _wait(self, request) -> Deferred:
        waiter = _Waiter(request)
        waiter.deferred = Deferred(lambda d: self._leave(waiter))
        waiter.timer = self.clock.callLater(
            self.upstream.queue_timeout, self._timedOut, waiter
        )
        self._queue.append(waiter)
        return waiter.deferred

    def _leave(self, waiter: _Waiter) -> None:
        """
        A waiting request was cancelled (its client went away).
        """
        self._queue.remove(waiter)
        waiter.timer.cancel()
        waiter.deferred = None

    def _timedOut(self, waiter: _Waiter) -> None:
        self.queue_timeouts += 1
        self._queue.remove(waiter)
        self._refuse(waiter)

    def _refuse(self, waiter: _Waiter) -> None:
        # The waiter and its Deferred refer to each other (through the
        # Deferred's canceller) until it fires.
        d, waiter.deferred = waiter.deferred, None
        d.errback(NoBackendAvailable(self._retry_after))

    def _serveQueue(self) -> None:
        """
        Give free backend slots to waiting requests, first come first served.
        """
        queue = self._queue
        while queue:
            candidates = self._open(None)
            if not candidates:
                return
            waiter = queue.popleft()
            waiter.timer.cancel()
            d, waiter.deferred = waiter.deferred, None
            d.callback(self._lease(waiter.request, candidates, False))

    @property
    def queued(self) -> int:
        """
        How many requests wait for a backend.
        """
        return len(self._queue)

    # Backend state -----------------------------------------------------------

    def _update(self) -> None:
        """
        Work out the eligible backends again after a change of state: those
        healthy and in rotation, the C{backup} ones only when no other is
        (see L{_preferred}).  When none is healthy and in rotation, every backend not draining is
        tried (failing open, as nginx and Envoy's panic mode do): a health
        check that fails everywhere more often means a wrong check than a
        dead upstream, and a request tried is no worse off than one refused.
        """
        eligible = _preferred(
            [
                backend
                for backend in self.backends
                if backend.healthy and not backend.draining and not backend.ejected_until
            ]
        )
        if not eligible:
            eligible = _preferred(
                [backend for backend in self.backends if not backend.draining]
            )
            if eligible:
                self.log.warn(
                    "upstream {upstream}: no backend is healthy; trying all of them",
                    upstream=self.upstream.name,
                )
        self._eligible = eligible
        if self._queue:
            self._serveQueue()

    def change(
        self, added: Sequence[Backend], removed: Sequence[Backend], ramp: bool = True
    ) -> None:
        """
        Backends join and leave the upstream (its DNS answer changed):
        those that join take requests at once (after a slow start, when
        C{ramp}); those that leave take no new request, and each is closed
        when the exchanges it carries are over.  The others keep all their
        state, and the policy learns the new list (see
        L{IBackendsChanged}).
        """
        for backend in removed:
            if backend._ejection is not None:
                backend._ejection.cancel()
                backend._ejection = None
            if self._sticky is not None:
                self._sticky.discard(backend)
            if backend.in_flight:
                self.leaving.append(backend)
            else:
                backend.pool.close()
        for backend in added:
            if ramp:
                backend.start_ramp()
            if self._sticky is not None:
                self._sticky.add(backend)
        gone = set(removed)
        self.backends = tuple(b for b in self.backends if b not in gone) + tuple(added)
        if IBackendsChanged.providedBy(self._picker):
            self._picker.backends_changed(self.backends)
        elif self._remake_picker is not None:
            self._picker = self._remake_picker(self.backends)
        self._update()

    def _gone(self, backend: Backend) -> None:
        """
        A backend that left finished its last exchange: close it.
        """
        self.leaving.remove(backend)
        backend.pool.close()

    def looked_up(self) -> None:
        """
        A DNS lookup answered (or failed) for the first time: when none is
        left to wait for and no backend can take a request, the requests
        that waited are answered 503.
        """
        self.awaiting -= 1
        if not self.awaiting and not self._eligible:
            while self._queue:
                waiter = self._queue.popleft()
                waiter.timer.cancel()
                self._refuse(waiter)

    def set_healthy(self, backend: Backend, healthy: bool) -> None:
        """
        Active health checks found C{backend} healthy or not (they log
        it, with why: see L{txrevproxy.upstream.health}).
        """
        if backend.healthy == healthy:
            return
        backend.healthy = healthy
        if healthy:
            backend.start_ramp()
        self._update()

    def _log_rotation(self, backend: Backend, state: str, level=LogLevel.info) -> None:
        self.log.emit(
            level,
            "upstream {upstream}: backend {url} is {state}",
            upstream=self.upstream.name,
            url=backend.server.url,
            state=state,
        )

    def _eject(self, backend: Backend) -> None:
        """
        Take a failing backend out of rotation for a while, unless that
        would eject more than C{max_ejection_percent} of the backends.  An
        ejection that comes less than the previous ejection's length after
        the backend returned lasts twice as long, up to
        C{max_ejection_time}.
        """
        if backend.ejected_until:
            return
        outlier = self._outlier
        ejected = sum(1 for other in self.backends if other.ejected_until)
        if (ejected + 1) * 100 > outlier.max_ejection_percent * len(self.backends):
            return
        now = self.clock.seconds()
        if backend.ejected_for and now - backend.returned_at < backend.ejected_for:
            duration = min(backend.ejected_for * 2, outlier.max_ejection_time)
        else:
            duration = outlier.ejection_time
        backend.ejected_for = duration
        backend.ejected_until = now + duration
        backend.ejections += 1
        backend._ejection = self.clock.callLater(duration, self._return, backend)
        self.log.warn(
            "upstream {upstream}: backend {url} ejected for {seconds}s after "
            "{failures} failures in a row",
            upstream=self.upstream.name,
            url=backend.server.url,
            seconds=duration,
            failures=backend.failures,
        )
        backend.failures = 0
        self._update()

    def _return(self, backend: Backend) -> None:
        backend._ejection = None
        backend.ejected_until = 0.0
        backend.returned_at = self.clock.seconds()
        backend.failures = 0
        backend.start_ramp()
        self._log_rotation(backend, "back from its ejection", LogLevel.warn)
        self._update()

    def backend(self, key: Union[int, str]) -> Backend:
        """
        One backend, by its position in C{servers} or by its C{url}.

        @raise KeyError: when there is no such backend.
        """
        if isinstance(key, int):
            if 0 <= key < len(self.backends):
                return self.backends[key]
        else:
            for backend in self.backends:
                if backend.server.url == key:
                    return backend
        raise KeyError(
            "upstream %s has no server %r" % (self.upstream.name, key)
        )

    def drain(self, key: Union[int, str]) -> None:
        """
        Send no new requests to a backend; those in flight finish.

        @param key: its position in C{servers} or its C{url}.
        @raise KeyError: when there is no such backend.
        """
        backend = self.backend(key)
        if not backend.draining:
            backend.draining = True
            self._log_rotation(backend, "drained")
            self._update()

    def enable(self, key: Union[int, str]) -> None:
        """
        Put a drained backend back in rotation (with a slow start).

        @param key: its position in C{servers} or its C{url}.
        @raise KeyError: when there is no such backend.
        """
        backend = self.backend(key)
        if backend.draining:
            backend.draining = False
            backend.start_ramp()
            self._log_rotation(backend, "enabled")
            self._update()

    def state(self) -> Dict[str, Any]:
        """
        The state of the upstream and of each backend, as plain data for the
        admin API and metrics.
        """
        now = self.clock.seconds()
        backends: List[Dict[str, Any]] = [
            {
                "url": backend.server.url,
                "weight": backend.weight,
                "current_weight": backend.current_weight(),
                "max_connections": backend.limit,
                "in_flight": backend.in_flight,
                "healthy": backend.healthy,
                "draining": backend.draining,
                "backup": backend.server.backup,
                "ejected": bool(backend.ejected_until),
                "ejected_seconds_left": max(0.0, backend.ejected_until - now)
                if backend.ejected_until
                else 0.0,
                "ejections": backend.ejections,
                "consecutive_failures": backend.failures,
                "last_check": backend.last_check,
                "latency": backend.latency,
            }
            for backend in self.backends
        ]
        return {
            "upstream": self.upstream.name,
            "policy": self.upstream.balance,
            "in_flight": self.in_flight,
            "queued": len(self._queue),
            "backends": backends,
            "leaving": [
                {"url": backend.server.url, "in_flight": backend.in_flight}
                for backend in self.leaving
            ],
            "lookups": [lookup.state() for lookup in self.lookups],
        }

    def close(self) -> None:
        """
        Answer waiting requests 503, stop the ejection timers, and close
        every backend's idle connections; busy ones close when done.
        """
        while self._queue:
            waiter = self._queue.popleft()
            waiter.timer.cancel()
            self._refuse(waiter)
        for backend in self.backends + tuple(self.leaving):
            if backend._ejection is not None:
                backend._ejection.cancel()
                backend._ejection = None
            backend.pool.close()
