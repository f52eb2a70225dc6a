"""
The HTTP/2 connections to one backend (C{protocol = "h2"} or C{"h2c"}):
the same calls as the HTTP/1.1 L{txrevproxy.upstream.pool.ConnectionPool},
but what it hands out is a stream on a shared connection.

A request takes a stream on the first connection with room
(L{H2ConnectionPool.take_idle}); when none has, it waits for a connection
being made that still has room for it, or starts a new one
(L{H2ConnectionPool.connect}): a burst of requests shares one new
connection, up to C{max_streams}, instead of opening one each.  The
balancer's leases count requests, so a backend's C{max_connections}
bounds its concurrent streams.
"""

from __future__ import annotations

from typing import List, Optional, Set

import attr
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..http.h2_fields import h2_request_fields
from ..interfaces import IBackendPool
from .deadlines import DeadlineSweep
from .h2connection import H2UpstreamConnection, H2UpstreamStream
from .pool import connect_timed_out, quiet_factory


@attr.s(auto_attribs=True, eq=False)
class _Opening:
    """
    A connection being made, and the requests waiting for a stream on it.
    """

    waiters: List[Deferred] = attr.Factory(list)


@implementer(IBackendPool)
class H2ConnectionPool:
    """
    The HTTP/2 connections to one backend; see the module docstring.

    It sends no PROXY protocol header (L{proxy_protocol} is L{None}): a
    header names one client, and a connection carries the streams of
    many (the configuration refuses the two together).

    @ivar name: the backend URL, for log messages.
    @ivar endpoint: how connections are made (health checks connect
        through it too).
    @ivar connect_timeout: the endpoint's own connect timeout (see
        L{txrevproxy.upstream.pool.ConnectionPool}).
    """

    log = Logger()

    _closed = False
    proxy_protocol = None

    def __init__(
        self,
        clock,
        endpoint: IStreamClientEndpoint,
        name: str,
        idle_timeout: float,
        max_streams: int,
        scheme: bytes,
        connect_timeout: float = 0.0,
        sweep_deadlines: bool = True,
    ) -> None:
        self._clock = clock
        self.endpoint = endpoint
        self.name = name
        self.connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._max_streams = max_streams
        self._scheme = scheme
        self._connections: List[H2UpstreamConnection] = []
        self._opening: List[_Opening] = []
        self._streams: Set[H2UpstreamStream] = set()
        self._sweeper = None
        self._factory = quiet_factory(lambda: H2UpstreamConnection(self, max_streams))
        self._deadlines = (
            DeadlineSweep(clock, self._streams, self._connections)
            if sweep_deadlines
            else None
        )

    def serialize_head(self, method: bytes, target: bytes, headers) -> list:
        """
        The request head as the streams send it: HTTP/2 fields.
        """
        return h2_request_fields(method, target, headers, self._scheme)

    def health_pool(self, clock) -> "H2ConnectionPool":
        """
        A pool of the same kind for the backend's health checks: a
        connection of their own, closed when its check ended.
        """
        return H2ConnectionPool(
            clock, self.endpoint, self.name, 0.0, 1, self._scheme, sweep_deadlines=False
        )

    @property
    def idle_count(self) -> int:
        """
        How many connections carry no stream.
        """
        return sum(1 for each in self._connections if not each.streams)

    @property
    def busy_count(self) -> int:
        """
        How many connections carry streams.
        """
        return len(self._connections) - self.idle_count

    def proxy_header(self, source, destination) -> None:
        return None

    def take_idle(self, header: None = None) -> Optional[H2UpstreamStream]:
        """
        A stream on a connection with room, the oldest first (so that
        the newer ones may go idle and close), or L{None}.
        """
        for connection in self._connections:
            if connection.available() > 0:
                return self._reserved(connection)
        return None

    def _reserved(self, connection: H2UpstreamConnection) -> H2UpstreamStream:
        stream = connection.reserve()
        self._streams.add(stream)
        return stream

    def connect(self, timeout: Optional[float] = None, header: None = None) -> Deferred:
        """
        A stream on a connection being made.

        @param timeout: the route's connect timeout, when it is shorter
            than the endpoint's.
        @return: a L{Deferred} firing with an L{H2UpstreamStream}, or
            failing with the connection error.
        """
        opening = None
        for each in self._opening:
            if len(each.waiters) < self._max_streams:
                opening = each
                break
        new = opening is None
        if new:
            opening = _Opening()
            self._opening.append(opening)
        waiter = Deferred(lambda d: opening.waiters.remove(d))
        opening.waiters.append(waiter)
        if timeout is not None and timeout < self.connect_timeout:
            waiter.addTimeout(timeout, self._clock, onTimeoutCancel=connect_timed_out)
        if new:
            self.endpoint.connect(self._factory).addCallbacks(
                self._opened,
                self._openFailed,
                callbackArgs=(opening,),
                errbackArgs=(opening,),
            )
        return waiter

    def _opened(self, connection: H2UpstreamConnection, opening: _Opening) -> None:
        self._opening.remove(opening)
        self._connections.append(connection)
        if self._deadlines is not None:
            self._deadlines.start()
        streams = [self._reserved(connection) for _ in opening.waiters]
        if self._closed:
            connection.close()
        elif not streams:
            self.connectionIdle(connection)
        for waiter, stream in zip(opening.waiters, streams):
            waiter.callback(stream)

    def _openFailed(self, reason: Failure, opening: _Opening) -> None:
        self._opening.remove(opening)
        for waiter in opening.waiters:
            waiter.errback(reason)

    def release(self, stream: H2UpstreamStream) -> None:
        """
        Take back a stream an exchange does not use after all.
        """
        stream.abort()

    # What the connections tell ---------------------------------------------

    def streamClosed(self, stream: H2UpstreamStream) -> None:
        self._streams.discard(stream)

    def connectionIdle(self, connection: H2UpstreamConnection) -> None:
        """
        A connection's last stream ended: it is closed after
        C{idle_timeout} if none is opened on it by then.
        """
        connection.idle_since = self._clock.seconds()
        if not self._idle_timeout:
            connection.close()
        elif self._sweeper is None:
            self._sweeper = self._clock.callLater(self._idle_timeout, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = self._clock.seconds() - self._idle_timeout
        soonest = None
        for connection in list(self._connections):
            if connection.streams or connection.available() <= 0:
                continue
            if connection.idle_since <= deadline:
                connection.close()
            elif soonest is None or connection.idle_since < soonest:
                soonest = connection.idle_since
        if soonest is not None:
            self._sweeper = self._clock.callLater(soonest - deadline, self._sweep)

    def connectionLost(self, connection: H2UpstreamConnection) -> None:
        try:
            self._connections.remove(connection)
        except ValueError:
            pass
        if not self._connections and self._deadlines is not None:
            self._deadlines.stop()

    def close(self) -> None:
        """
        Close the idle connections now and the busy ones when their
        streams end; used when a reload retires this pool or on shutdown.
        """
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._connections):
            connection.close()
