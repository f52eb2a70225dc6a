"""
Keep-alive connection pools, one per backend.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Deque, Optional, Set, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from ..config.model import BackendServer, BackendTLS
from ..http.headers import serialize_request_head
from ..http.proxy_protocol import PROXY_HEADERS
from ..interfaces import IBackendPool
from ..net.sized_reads import SizedReadsTLSEndpoint
from ..tls.client import BACKEND_PROTOCOLS, client_tls
from .connection import UpstreamProtocol
from .deadlines import DeadlineSweep
from .proxy_header import with_proxy_header


def backend_endpoint(
    reactor,
    server: BackendServer,
    connect_timeout: float,
    tls: Optional[BackendTLS] = None,
    protocols: Tuple[bytes, ...] = BACKEND_PROTOCOLS,
) -> IStreamClientEndpoint:
    """
    The client endpoint for a backend: a plain TCP endpoint for an address
    literal, so that no name resolution happens per connection, and a
    L{HostnameEndpoint} (happy eyeballs over the resolved addresses) for a
    name; wrapped in TLS for an C{https} backend.

    @param tls: the TLS settings of an C{https} backend (default: verify
        against the URL's host with the system's CAs).  Its C{ca} file is
        read here, when the runtime is built.
    @param protocols: what an C{https} backend is offered through ALPN.
    """
    try:
        address = ipaddress.ip_address(server.host)
    except ValueError:
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, server.host.encode("idna"), server.port, timeout=connect_timeout
        )
    else:
        endpoint_type = (
            TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
        )
        endpoint = endpoint_type(
            reactor, server.host, server.port, timeout=connect_timeout
        )
    if server.scheme != "https":
        return endpoint
    tls = tls or BackendTLS(server.host)
    creator = client_tls(tls.server_name, tls.ca, tls.verify, protocols)
    return SizedReadsTLSEndpoint(creator, endpoint)


def connect_timed_out(result, timeout: float):
    """
    A route's shorter connect timeout fails as the endpoint's own does.
    """
    raise ConnectTimeoutError("connecting took longer than %gs" % (timeout,))


def quiet_factory(build) -> Factory:
    """
    A client factory for C{build} that does not log "Starting factory" and
    "Stopping factory" for each connection (a proxy makes many).
    """
    factory = Factory.forProtocol(build)
    factory.noisy = False
    return factory


@implementer(IBackendPool)
class ConnectionPool:
    """
    The idle keep-alive connections to one backend, and the way to make new
    ones.

    The idle list holds only connections in the C{IDLE} state (see
    L{txrevproxy.upstream.connection}): one leaves it when the pool closes
    it, when it is lost, and at once when it is dropped for sending bytes
    nobody asked for.

    Idle connections are reused most-recently-used first, which keeps the
    warm ones busy and lets the cold ones age out: a sweeper closes those
    idle for longer than C{idle_timeout}.  The sweeper runs only while
    there are idle connections, so an unused pool costs no timer.

    The pool's L{DeadlineSweep} checks, once a second, the timeouts of
    the exchanges on its busy connections after their responses started.

    @ivar name: the backend URL, for log messages.
    @ivar endpoint: how connections to the backend are made (health checks
        connect through it too).
    @ivar connect_timeout: the endpoint's own connect timeout, the longest
        any route of the upstream asks for; a route that asks for less
        passes it to L{connect}.

    Without C{sweep_deadlines} (the health checks' pools, whose checks have
    their own time limit) there is no sweep.

    With C{proxy_protocol} (C{"v1"} or C{"v2"}), every connection starts
    with a PROXY protocol header (see L{txrevproxy.upstream.proxy_header}).
    It names one client, so an idle connection is reused only for a
    request with the same header: the same client address and port, to
    the same listener address, which is a request of the same client
    connection, as HAProxy reuses a connection that sent a PROXY header
    only for the same source.  A connection without a client (a health
    check's) sends C{LOCAL} (v2) or C{UNKNOWN} (v1).

    @ivar proxy_protocol: C{"v1"}, C{"v2"} or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        endpoint: IStreamClientEndpoint,
        name: str,
        idle_timeout: float,
        max_idle: int,
        connect_timeout: float = 0.0,
        sweep_deadlines: bool = True,
        proxy_protocol: Optional[str] = None,
    ) -> None:
        self._clock = clock
        self.endpoint = endpoint
        self.name = name
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        self.connect_timeout = connect_timeout
        self.proxy_protocol = proxy_protocol
        self._make_header = PROXY_HEADERS.get(proxy_protocol)
        self._idle: Deque[UpstreamProtocol] = deque()
        self._busy: Set[UpstreamProtocol] = set()
        self._sweeper = None
        self._closed = False
        self._factory = quiet_factory(lambda: UpstreamProtocol(self))
        self._deadlines = (
            DeadlineSweep(clock, self._busy, self._idle) if sweep_deadlines else None
        )

    #: How an exchange's request head is put for these connections: the
    #: bytes of an HTTP/1.1 head.
    serialize_head = staticmethod(serialize_request_head)

    def health_pool(self, clock) -> "ConnectionPool":
        """
        A pool of the same kind for the backend's health checks, which
        keeps no idle connection (each check has one of its own) and no
        deadlines (a check has its own time limit).
        """
        return ConnectionPool(
            clock,
            self.endpoint,
            self.name,
            0.0,
            0,
            sweep_deadlines=False,
            proxy_protocol=self.proxy_protocol,
        )

    @property
    def idle_count(self) -> int:
        """
        How many connections wait idle in the pool.
        """
        return len(self._idle)

    @property
    def busy_count(self) -> int:
        """
        How many connections carry an exchange or are being opened.
        """
        return len(self._busy)

    def proxy_header(self, source, destination) -> Optional[bytes]:
        """
        The PROXY protocol header for a request of a client at C{source}
        that connected to C{destination} (Twisted addresses: the client
        connection's C{getPeer} and C{getHost}, as a PROXY header in named
        them), or L{None} when the pool sends none.  Addresses other than
        IP (a Unix socket's) make a header without addresses.
        """
        make = self._make_header
        if make is None:
            return None
        port = getattr(source, "port", None)
        destination_port = getattr(destination, "port", None)
        if port is None or destination_port is None:
            return make(None, None)
        return make((source.host, port), (destination.host, destination_port))

    def take_idle(self, header: Optional[bytes] = None) -> Optional[UpstreamProtocol]:
        """
        An idle connection, or L{None} when there is none; a request never
        waits for a new connection when an idle one exists.

        @param header: the request's PROXY protocol header (see
            L{proxy_header}): only a connection that sent the same one is
            taken.
        """
        idle = self._idle
        if not idle:
            return None
        connection = idle[-1]
        if connection.proxy_header == header:
            idle.pop()
        else:
            # A pool with proxy_protocol: the most recent idle connection
            # of this client, if any.
            for connection in reversed(idle):
                if connection.proxy_header == header:
                    idle.remove(connection)
                    break
            else:
                return None
        self._busy.add(connection)
        return connection

    def connection_endpoint(self, header: Optional[bytes] = None) -> IStreamClientEndpoint:
        """
        The endpoint a new connection is made with: the backend's, writing
        C{header} first on a pool with C{proxy_protocol} (without
        C{header}, the one of a connection without a client).
        """
        if self._make_header is None:
            return self.endpoint
        if header is None:
            header = self._make_header(None, None)
        return with_proxy_header(self.endpoint, header)

    def connect(
        self, timeout: Optional[float] = None, header: Optional[bytes] = None
    ) -> Deferred:
        """
        Open a new connection.

        @param timeout: the route's connect timeout, when it is shorter
            than the endpoint's (L{connect_timeout}).
        @param header: the PROXY protocol header of the request it is for
            (see L{proxy_header}).
        @return: a L{Deferred} that fires with a connected
            L{UpstreamProtocol}, or fails with the connection error (a
            L{twisted.internet.error.TimeoutError} when it timed out).
        """
        d = self.connection_endpoint(header).connect(self._factory)
        if timeout is not None and timeout < self.connect_timeout:
            d.addTimeout(timeout, self._clock, onTimeoutCancel=connect_timed_out)
        d.addCallback(self._connected, header)
        return d

    def _connected(
        self, connection: UpstreamProtocol, header: Optional[bytes] = None
    ) -> UpstreamProtocol:
        if header is not None:
            connection.proxy_header = header
        self._busy.add(connection)
        if self._deadlines is not None:
            self._deadlines.start()
        return connection

    def release(self, connection: UpstreamProtocol) -> None:
        """
        Take back a connection whose exchange ended cleanly.
        """
        self._busy.discard(connection)
        if self._closed or len(self._idle) >= self._max_idle:
            connection.close()
            self._stopSweepWhenDone()
            return
        connection.idle_since = self._clock.seconds()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = self._clock.callLater(self._idle_timeout, self._sweep)

    def lost(self, connection: UpstreamProtocol) -> None:
        """
        Forget a connection that closed, idle or not.
        """
        self._busy.discard(connection)
        try:
            self._idle.remove(connection)
        except ValueError:
            pass
        self._stopSweepWhenDone()

    def _stopSweepWhenDone(self) -> None:
        """
        The deadline sweep stops with the pool's last connection (a closed
        pool's idle ones are closing).
        """
        if (
            not self._busy
            and (self._closed or not self._idle)
            and self._deadlines is not None
        ):
            self._deadlines.stop()

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = self._clock.seconds() - self._idle_timeout
        idle = self._idle
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().close()
        self._stopSweepWhenDone()
        if idle:
            wait = idle[0].idle_since - deadline
            self._sweeper = self._clock.callLater(wait, self._sweep)

    def close(self) -> None:
        """
        Close the idle connections now and the busy ones when their
        exchanges end; used when a reload retires this pool or on shutdown.
        """
        self._closed = True
        self._stopSweepWhenDone()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle.pop().close()
