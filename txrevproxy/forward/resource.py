"""
The resource at the end of a route: it forwards the request to an upstream.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Mapping, Optional, Tuple

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..config.model import BackendServer
from ..http.headers import (
    BACKEND_BANNERS,
    response_skipped,
    serialize_request_head,
    upstream_request_headers,
    with_client_subject,
)
from ..http.trace_context import with_trace_context
from ..routing.response_rewrite import ResponseRewrite
from ..routing.rewrite import HeaderRewrite, PathRewrite
from ..server.answers import respond_with_error
from .exchange import ProxyExchange
from .maintenance import MaintenanceSwitch

_VIA = {
    b"HTTP/1.1": b"1.1 txrevproxy",
    b"HTTP/1.0": b"1.0 txrevproxy",
    b"HTTP/2": b"2 txrevproxy",
}


class ProxyTarget:
    """
    What the hot path needs to forward a request on one route, worked out
    once when the configuration is loaded.

    @ivar balancer: picks the backend (see L{txrevproxy.upstream.balancer}).
    @ivar clock: for the response timeout.
    @ivar response_timeout: seconds from the end of the request to the first
        response byte.
    @ivar preserve_host: send the client's Host rather than the backend's.
    @ivar tunnel_idle_timeout: seconds an upgraded (WebSocket) connection
        may stay silent both ways before it is closed.
    @ivar path_rewrite: the route's L{PathRewrite}, or L{None}: the
        request target is sent as the client sent it.
    @ivar request_rules: the route's request header rules, or L{None}.
    @ivar response_rules: the route's response header rules, or L{None}
        (applied by L{ProxyExchange}).
    @ivar response_rewrite: the route's
        L{txrevproxy.routing.response_rewrite.ResponseRewrite} of
        Location, Content-Location, Refresh and Set-Cookie, or L{None}
        (applied by L{ProxyExchange}, before L{response_rules}).
    @ivar error_pages: the route's pages by status, each C{(body,
        content type)}, or L{None}.
    @ivar forwarded: append this hop to the Forwarded header (C{[server]
        forwarded = "add"}).
    @ivar forwarded_prefix: what the route strips from paths, sent as
        X-Forwarded-Prefix, or L{None}.
    @ivar connect_timeout: seconds to connect to a backend, passed to its
        pool (which applies it when shorter than its endpoint's), or
        L{None}: the pool's own.
    @ivar read_timeout: seconds between two backend reads once the
        response started.
    @ivar send_timeout: seconds the client may leave the response paused.
    @ivar total_timeout: seconds from dispatch to the end of the
        response; C{0}: no limit.
    @ivar intercept_errors: the backend statuses answered with the error
        page instead (see L{txrevproxy.forward.intercept}), or L{None}.
    @ivar maintenance: the route's L{MaintenanceSwitch}.
    @ivar maintenance_retry_after: the Retry-After seconds of its 503
        while in maintenance.
    @ivar response_skipped: the lower-cased response header names not
        passed on to the client (see
        L{txrevproxy.http.headers.response_skipped}).
    @ivar banners: the backend banners the route drops (none when it
        passes them), also from responses served by its cache.
    @ivar mirror: the route's L{txrevproxy.forward.mirror.Mirror}, which
        gets a copy of each request it forwards, or L{None}.
    """

    def __init__(
        self,
        balancer,
        clock,
        response_timeout: float,
        preserve_host: bool,
        tunnel_idle_timeout: float = 3600.0,
        *,
        path_rewrite: Optional[PathRewrite] = None,
        request_rules: Optional[HeaderRewrite] = None,
        response_rules: Optional[HeaderRewrite] = None,
        error_pages: Optional[Mapping[int, Tuple[bytes, bytes]]] = None,
        forwarded: bool = False,
        connect_timeout: Optional[float] = None,
        read_timeout: float = 60.0,
        send_timeout: float = 60.0,
        total_timeout: float = 0.0,
        response_rewrite: Optional[ResponseRewrite] = None,
        intercept_errors: Optional[FrozenSet[int]] = None,
        maintenance: Optional[MaintenanceSwitch] = None,
        maintenance_retry_after: int = 60,
        pass_banners: bool = False,
        mirror=None,
    ):
        self.balancer = balancer
        self.clock = clock
        self.response_timeout = response_timeout
        self.preserve_host = preserve_host
        self.tunnel_idle_timeout = tunnel_idle_timeout
        self.path_rewrite = path_rewrite
        self.request_rules = request_rules
        self.response_rules = response_rules
        self.error_pages = error_pages
        self.forwarded = forwarded
        self.forwarded_prefix = (
            None if path_rewrite is None else path_rewrite.stripped_prefix
        )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout
        self.total_timeout = total_timeout
        self.response_rewrite = response_rewrite
        self.intercept_errors = intercept_errors
        self.maintenance = MaintenanceSwitch() if maintenance is None else maintenance
        self.maintenance_retry_after = maintenance_retry_after
        self.response_skipped = response_skipped(pass_banners)
        self.banners = frozenset() if pass_banners else BACKEND_BANNERS
        self.mirror = mirror
        self._authorities: Dict[BackendServer, bytes] = {}

    def request_head(
        self,
        request,
        server: BackendServer,
        framing,
        upgrade=None,
        serialize=serialize_request_head,
    ):
        """
        The request head to send to C{server} for C{request}.

        @param framing: how the body is sent: L{None} (no body),
            C{b"chunked"}, or a decimal Content-Length.
        @param upgrade: the protocol the client asks to switch to, if any.
        @param serialize: how the backend's connections take a head from
            the method, the target and the header list: the pool's
            C{serialize_head} (the bytes of an HTTP/1.1 head, or HTTP/2
            fields).
        """
        client_host = request.requestHeaders.getRawHeaders(b"host", [b""])[0]
        if self.preserve_host:
            host = client_host
        else:
            host = self._authorities.get(server)
            if host is None:
                host = self._authorities[server] = server.authority.encode("idna")
        connection = request.connection
        site = request.site
        headers = upstream_request_headers(
            [
                (name, value)
                for name, values in request.requestHeaders.getAllRawHeaders()
                for value in values
            ],
            host=host,
            client_host=client_host,
            client_ip=connection.client_ip,
            trusted=connection.trusted,
            scheme=site.scheme,
            via=_VIA.get(request.clientproto, b"1.1 txrevproxy"),
            request_id=request.request_id,
            body_framing=framing,
            upgrade=upgrade,
            port=connection.local_port,
            prefix=self.forwarded_prefix,
            forwarded=self.forwarded,
        )
        subject_header = site.client_subject_header
        if subject_header is not None:
            headers = with_client_subject(
                headers, subject_header, connection.client_subject()
            )
        if self.request_rules is not None:
            headers = self.request_rules.apply(headers, request)
        trace = request.trace
        if trace is not None:
            headers = with_trace_context(headers, trace.traceparent, trace.tracestate)
        path_rewrite = self.path_rewrite
        target = request.uri if path_rewrite is None else path_rewrite.target(request)
        return serialize(request.method, target, headers)


class ReverseProxyResource(Resource):
    """
    A leaf of the resource tree that proxies every request reaching it to
    its L{ProxyTarget}.
    """

    isLeaf = True

    def __init__(self, target: ProxyTarget) -> None:
        super().__init__()
        self.target = target

    def render(self, request):
        target = self.target
        if target.error_pages is not None:
            request.useErrorPages(target.error_pages)
        if target.maintenance.on:
            respond_with_error(
                request,
                503,
                retry_after=target.maintenance_retry_after,
                cause="maintenance",
            )
            return NOT_DONE_YET
        self.forward(request)
        if target.mirror is not None:
            target.mirror.copy(request)
        return NOT_DONE_YET

    def forward(self, request) -> None:
        """
        Send the request to a backend.  A route with a cache overrides
        this to answer from its store first, so whatever L{render} does
        before (the route's request filters) applies to cached routes too.
        """
        ProxyExchange(request, self.target).start()
