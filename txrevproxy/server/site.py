"""
The site of one listener: the settings and limits its connections share,
the sweep that closes slow and idle clients, and the log of finished
requests.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Dict, Mapping, Optional, Set, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.task import LoopingCall
from twisted.web import server

from ..config.model import ServerSettings
from ..http.request_parser import HeadLimits
from ..observe.metrics import ListenerStats
from ..observe.tracing import Tracing
from .channel import ProxyChannel
from .connection_counts import ConnectionCounts
from .request import ProxyRequest


class ProxySite(server.Site):
    """
    The site of one listener.

    @ivar max_request_body: request body limit in bytes (0: none).
    @ivar channels: the open HTTP/1.1 connections.
    @ivar h2_connections: the open HTTP/2 connections.
    @ivar tunnels: the HTTP/1.1 connections that became tunnels
        (WebSocket, see L{txrevproxy.forward.tunnel}); they stay with the
        site that accepted them.
    @ivar scheme: C{b"http"} or C{b"https"}, as the backend is told in
        X-Forwarded-Proto.
    @ivar hsts: the Strict-Transport-Security value added to responses that
        do not carry one, or L{None}.
    @ivar client_subject_header: the header that carries the verified
        client certificate subject to the backend (mutual TLS), or L{None}.
    @ivar proxy_protocol: connections start with a PROXY protocol header
        (read by the endpoint's wrapper), so the client is known only once
        the first bytes are in.
    @ivar server_header: the proxy's own Server value, or L{None}.
    @ivar refuse_body_without_semantics: answer 400 to a GET, HEAD, OPTIONS
        or DELETE request with a body (C{[server] body_without_semantics =
        "refuse"}) rather than forward it and close the connection.
    @ivar drop_underscored: drop the request fields whose names contain
        C{_} (C{[server] underscores_in_headers = "drop"}).
    @ivar stats: the listener's L{ListenerStats}.
    @ivar observe: called with each finished request (access log and
        metrics; see L{txrevproxy.observe.requests}), or L{None}.
    @ivar error_pages: the listener's error pages, each C{(body, content
        type)} by status, or L{None} (see
        L{txrevproxy.server.answers.error_page}).
    @ivar tracing: the L{txrevproxy.observe.tracing.Tracing} that traces
        each request, or L{None} (no C{[tracing]} table).
    @ivar connection_counts: the open connections of each client address
        (L{txrevproxy.server.connection_counts}): the site's own, or the
        listener's shared through Redis.
    """

    protocol = ProxyChannel
    requestFactory = ProxyRequest

    def __init__(
        self,
        resource,
        *,
        reactor,
        settings: ServerSettings,
        scheme: bytes = b"http",
        hsts: Optional[bytes] = None,
        client_subject_header: Optional[bytes] = None,
        proxy_protocol: bool = False,
        stats: Optional[ListenerStats] = None,
        observe: Optional[Callable[[ProxyRequest], None]] = None,
        error_pages: Optional[Mapping[int, Tuple[bytes, bytes]]] = None,
        tracing: Optional[Tracing] = None,
        connection_counts: Optional[ConnectionCounts] = None,
    ) -> None:
        # No timeout for twisted.web: its idle timer is a new call on the
        # reactor for every request, where the sweep (see
        # _closeSlowClients) checks every connection once a second.
        super().__init__(resource, reactor=reactor, timeout=None)
        self.keepalive_timeout = settings.keepalive_timeout
        self.proxy_protocol = proxy_protocol
        self.stats = ListenerStats() if stats is None else stats
        self.observe = observe
        self.error_pages = error_pages
        self.tracing = tracing
        self.max_request_body = settings.max_request_body
        self.max_request_line = settings.max_request_line
        self.max_headers = settings.max_headers
        self.max_header_size = settings.max_header_size
        self.refuse_body_without_semantics = settings.body_without_semantics == "refuse"
        self.drop_underscored = settings.underscores_in_headers == "drop"
        #: The limits its HTTP/1.1 channels read request heads by, one
        #: object for all of them.
        self.head_limits = HeadLimits(
            self.max_request_line,
            self.max_header_size,
            self.max_headers,
            self.drop_underscored,
        )
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.min_body_bytes = max(1, int(settings.min_body_rate * settings.body_timeout))
        self.max_connections_per_ip = settings.max_connections_per_ip
        self.max_requests_per_connection = settings.max_requests_per_connection
        self.connection_counts = (
            ConnectionCounts() if connection_counts is None else connection_counts
        )
        self.allowed_methods = frozenset(
            m.encode("ascii") for m in settings.allowed_methods
        )
        self.allow_header = b", ".join(sorted(self.allowed_methods))
        self.channels: Set[ProxyChannel] = set()
        self.h2_connections: Set = set()
        self.tunnels: Set[ProxyChannel] = set()
        self._sweeper: Optional[LoopingCall] = None
        self.scheme = scheme
        self.hsts = hsts
        self.client_subject_header = client_subject_header
        self.server_header = (
            None
            if settings.server_header is None
            else settings.server_header.encode("ascii")
        )
        self._trusted_networks = settings.trusted_proxies
        self._trust: Dict[Optional[str], bool] = {}
        self._local_addresses: Dict[IAddress, Tuple[IAddress, Optional[bytes]]] = {}

    def buildProtocol(self, addr) -> ProxyChannel:
        """
        A L{ProxyChannel} of this site.  Not Twisted's, which also sets the
        channel's C{callLater}, C{timeOut} and C{requestFactory} on each
        instance: the channel reads the first and last from its site and
        has no timeout of Twisted's.
        """
        channel = self.protocol()
        channel.factory = self
        channel.site = self
        return channel

    def count_connection(self, address: bytes, change: int) -> Optional[Deferred]:
        """
        Count a connection from C{address} opening (C{+1}) or closing
        (C{-1}), for C{max_connections_per_ip}.

        @return: L{None}, or a L{Deferred} that fires once the address's
            connections on the other processes are known (see
            L{txrevproxy.server.connection_counts}).
        """
        return self.connection_counts.count(address, change)

    def connection_count(self, address: bytes) -> int:
        """
        The open connections from C{address} (with
        C{max_connections_per_ip_store}, on every process that shares it,
        as last known).
        """
        return self.connection_counts.total(address)

    def startFactory(self) -> None:
        super().startFactory()
        self._sweeper = LoopingCall(self._closeSlowClients)
        self._sweeper.clock = self.reactor
        self._sweeper.start(min(1.0, self.header_timeout), now=False)

    def stopFactory(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        super().stopFactory()

    def _closeSlowClients(self) -> None:
        """
        Answer 408 to every client that has been sending one request head
        for longer than C{header_timeout}, or sends a body slower than
        C{min_body_rate} (see L{ProxyChannel.checkBodyRate}), and close the
        connections idle for longer than C{keepalive_timeout}.  One sweep
        a second over the open connections costs less than a timer per
        request.
        """
        now = self.reactor.seconds()
        too_early = now - self.header_timeout
        keepalive = self.keepalive_timeout
        window = self.body_timeout
        for channel in list(self.channels):
            started = channel.headStarted
            if started is not None and started <= too_early:
                channel.reject(408)
            elif channel.isIdle():
                overdue = now - channel.idleSince - keepalive
                if overdue >= 0:
                    channel.closeIdle(overdue)
            elif window:
                channel.checkBodyRate(now, window, self.min_body_bytes)

    def closeIdleConnections(self) -> int:
        """
        Close the connections that carry no request now, and have those that
        do close after their current response (a graceful shutdown, or a
        listener a reload removed).  Called again until none is busy, since
        a request may start on a connection in the meantime.

        HTTP/2 connections are drained (GOAWAY, see
        L{txrevproxy.net.h2_drain}): each closes once its streams are done.
        Tunnels are left to their ends: they count as busy until they
        close (or the shutdown deadline closes them, see
        L{abortConnections}).

        @return: how many connections are still busy.
        """
        busy = len(self.tunnels)
        for channel in list(self.channels):
            if channel.requests:
                channel.persistent = False
                busy += 1
            else:
                channel.transport.loseConnection()
        for connection in list(self.h2_connections):
            connection.drain()
            busy += 1
        return busy

    def handOver(self, successor: "ProxySite") -> None:
        """
        A reload replaced this site with C{successor} for the same
        listener: every open connection joins it (see
        L{ProxyChannel.joinSite}), so that its next request sees the new
        listener filters, limits and error pages, read from the site as
        every request reads them, at no cost per request.  Requests in
        flight finish with the site they started with.

        A listener that changed between plain HTTP and TLS cannot pass its
        connections on (the scheme is the connection's own): they are
        closed once idle instead, as for a removed listener.
        """
        if successor.scheme != self.scheme:
            self.closeIdleConnections()
            return
        for connection in list(self.channels) + list(self.h2_connections):
            connection.joinSite(successor)

    def abortConnections(self) -> None:
        """
        Close every connection at once: a graceful shutdown ran out of time.
        """
        for connection in (
            list(self.channels) + list(self.h2_connections) + list(self.tunnels)
        ):
            connection.transport.abortConnection()

    def local_address(self, address: IAddress) -> Tuple[IAddress, Optional[bytes]]:
        """
        A connection's local C{address}, and its port as decimal bytes (for
        X-Forwarded-Port; L{None} off TCP), shared by the connections to
        the same address: a listener's connections all have one of a few,
        and an idle connection need not keep copies of its own.
        """
        known = self._local_addresses.get(address)
        if known is None:
            port = getattr(address, "port", None)
            known = (address, None if port is None else b"%d" % (port,))
            if len(self._local_addresses) < 1000:
                self._local_addresses[address] = known
        return known

    def is_trusted(self, host: Optional[str]) -> bool:
        """
        Whether a peer address is a trusted proxy; remembered per address,
        since the same few peers connect again and again.
        """
        trusted = self._trust.get(host)
        if trusted is None:
            trusted = False
            if host is not None and self._trusted_networks:
                try:
                    address = ipaddress.ip_address(host)
                except ValueError:
                    pass
                else:
                    trusted = any(address in net for net in self._trusted_networks)
            if len(self._trust) < 10000:
                self._trust[host] = trusted
        return trusted

    def log(self, request) -> None:
        """
        Called by twisted.web as a request finishes (and by L{ProxyRequest}
        when its client went first).  Not twisted.web's log file, which
        costs about half the throughput: the access log comes with its own
        buffered writer.

        The line of a request answered after its client sent a FIN waits
        until the connection's L{txrevproxy.server.halfclose.HalfClosedClient}
        knows whether the client took the answer, and comes back here then.
        """
        watch = request.connection.watch
        if watch is not None:
            watch.hold(request)
            return
        observe = self.observe
        if observe is not None:
            observe(request)
