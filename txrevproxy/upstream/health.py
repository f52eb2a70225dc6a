"""
Active health checks: every C{interval}, each backend of an upstream is
checked (an HTTP GET, or a TCP connection), and after C{rise} passed checks
in a row a backend is in rotation, after C{fall} failed ones it is out.

A L{HealthChecker} is a service: the L{txrevproxy.app.service.ProxyService}
starts and stops it with itself.  Checks connect through the backend's own
endpoint (so an C{https} backend is checked over TLS, as requests reach
it) and read the response with the proxy's own HTTP client protocol, on a
connection of their own that is closed after each check: HTTP/1.1, or
HTTP/2 for an upstream with C{protocol = "h2"} or C{"h2c"} (the backend's
pool makes the checks' pool of its kind).
"""

from __future__ import annotations

from typing import Dict, List

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..config.model import HealthCheck
from ..interfaces import IUpstreamExchange
from .balancer import Backend, Balancer
from .pool import quiet_factory

_USER_AGENT = b"txrevproxy-health-check"


@implementer(IUpstreamExchange)
class _HTTPCheck:
    """
    One HTTP check: sends the request head on a new connection and fires
    L{result} with the response status, or fails with why there was none.
    It receives the response as an exchange does (see
    L{txrevproxy.upstream.connection.UpstreamProtocol}), discarding the body.
    Its request never asks to switch protocols, and its time limit is
    L{result}'s own, so it hears neither C{responseUpgraded} nor
    C{responseTimedOut}.
    """

    def __init__(self, head: bytes) -> None:
        self._head = head
        self._status = 0
        self._connecting = None
        self._connection = None
        self.result: Deferred = Deferred(self._cancel)

    def run(self, pool) -> Deferred:
        connecting = self._connecting = pool.connect()
        connecting.addCallbacks(self._connected, self._failed)
        return self.result

    def _connected(self, connection) -> None:
        self._connecting = None
        self._connection = connection
        connection.sendHead(self, self._head, False, None)

    def _failed(self, reason: Failure) -> None:
        if self._connecting is None:
            # Cancelled: L{result} fails with the cancellation instead.
            return
        self._connecting = None
        self.result.errback(reason)

    def _cancel(self, result: Deferred) -> None:
        """
        The check timed out (or the checker stopped): drop its connection.
        """
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
        elif self._connection is not None:
            connection, self._connection = self._connection, None
            connection.abort()

    def responseStarted(self) -> None:
        pass

    def holdWrites(self) -> None:
        return None

    def responseHead(self, status, reason, headers, length) -> None:
        self._status = status

    def responseBody(self, data: bytes) -> None:
        pass

    def responseTrailers(self, trailers) -> None:
        pass

    def responseEnd(self) -> None:
        self._connection = None
        self.result.callback(self._status)

    def upstreamFailed(self, reason: Failure) -> None:
        self._connection = None
        self.result.errback(reason)


def _tcp_check(backend: Backend) -> Deferred:
    """
    Connect to the backend and close the connection at once.
    """

    def connected(protocol: Protocol) -> None:
        protocol.transport.loseConnection()

    return (
        backend.pool.connection_endpoint()
        .connect(quiet_factory(Protocol))
        .addCallback(connected)
    )


class HealthChecker(Service):
    """
    The active health checks of one upstream.

    The first round starts at a random point of the first interval, so
    that the upstreams of a proxy (and proxies started together) do not
    check all at once.  Then a round starts every C{interval}; a round
    lasts no longer than C{timeout}, and one still running when the next is
    due makes that one wait for the next interval.  Until its first checks,
    a backend counts as healthy.  Backends that join the upstream (found
    in the DNS) are checked from the next round on; the counts of those
    that left are forgotten.
    """

    log = Logger()

    def __init__(self, balancer: Balancer, check: HealthCheck, clock, random) -> None:
        self.balancer = balancer
        self.check = check
        self._clock = clock
        self._random = random
        self._loop = LoopingCall(self._round)
        self._loop.clock = clock
        self._first = None
        self._pending: List[Deferred] = []
        self._passed: Dict[Backend, int] = {}
        self._failed: Dict[Backend, int] = {}
        self._pools: Dict[Backend, object] = {}

    def startService(self) -> None:
        super().startService()
        delay = self._random.uniform(0, self.check.interval)
        self._first = self._clock.callLater(delay, self._start)

    def _start(self) -> None:
        self._first = None
        self._loop.start(self.check.interval, now=True).addErrback(
            lambda failure: self.log.failure(
                "health checks of upstream {upstream} stopped",
                failure,
                upstream=self.balancer.upstream.name,
            )
        )

    def stopService(self) -> None:
        super().stopService()
        if self._first is not None:
            self._first.cancel()
            self._first = None
        if self._loop.running:
            self._loop.stop()
        for pending in list(self._pending):
            pending.cancel()

    def _round(self) -> Deferred:
        backends = self.balancer.backends
        for counts in (self._passed, self._failed, self._pools):
            for gone in set(counts).difference(backends):
                del counts[gone]
        return DeferredList([self._checkOne(backend) for backend in backends])

    def _checkOne(self, backend: Backend) -> Deferred:
        check = self.check
        if check.type == "tcp":
            d = _tcp_check(backend)
        else:
            host = (check.host or backend.server.authority).encode("idna")
            pool = self._pools.get(backend)
            if pool is None:
                pool = self._pools[backend] = backend.pool.health_pool(self._clock)
            head = pool.serialize_head(
                b"GET",
                check.path.encode("ascii"),
                [(b"Host", host), (b"User-Agent", _USER_AGENT), (b"Connection", b"close")],
            )
            d = _HTTPCheck(head).run(pool)
        d.addTimeout(check.timeout, self._clock)
        self._pending.append(d)
        d.addBoth(self._done, d)
        d.addCallbacks(
            self._answered,
            self._unanswered,
            callbackArgs=(backend,),
            errbackArgs=(backend,),
        )
        return d

    def _done(self, result, d: Deferred):
        self._pending.remove(d)
        return result

    def _answered(self, status, backend: Backend) -> None:
        if self.check.type == "tcp":
            self._record(backend, True, "connected")
        else:
            self._record(backend, self.check.passes(status), "HTTP %d" % (status,))

    def _unanswered(self, reason: Failure, backend: Backend) -> None:
        if not self.running:
            # Cancelled by stopService: not the backend's fault.
            return
        if reason.check(TimeoutError, ConnectingCancelledError):
            # A TCP check cancelled by its timeout fails with the latter.
            detail = "no answer within %gs" % (self.check.timeout,)
        else:
            detail = reason.getErrorMessage()
        self._record(backend, False, detail)

    def _record(self, backend: Backend, passed: bool, detail: str) -> None:
        """
        Count a check's result towards C{rise} or C{fall}, and tell the
        balancer when the backend crosses either.
        """
        backend.last_check = ("passed: " if passed else "failed: ") + detail
        if passed:
            self._failed[backend] = 0
            count = self._passed[backend] = self._passed.get(backend, 0) + 1
            if not backend.healthy and count >= self.check.rise:
                self.balancer.set_healthy(backend, True)
                self._log_change(backend, "up", count, detail)
        else:
            self._passed[backend] = 0
            count = self._failed[backend] = self._failed.get(backend, 0) + 1
            if backend.healthy and count >= self.check.fall:
                self.balancer.set_healthy(backend, False)
                self._log_change(backend, "down", count, detail)

    def _log_change(self, backend: Backend, state: str, count: int, detail: str) -> None:
        """
        A backend going out of rotation or back in is what an operator
        is paged for: a warning, with the check that decided it.
        """
        self.log.warn(
            "upstream {upstream}: backend {url} is {state} after {count} "
            "{outcome} checks in a row (last: {detail})",
            upstream=self.balancer.upstream.name,
            url=backend.server.url,
            state=state,
            count=count,
            outcome="passed" if state == "up" else "failed",
            detail=detail,
        )
