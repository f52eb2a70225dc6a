"""
What happens to each finished request besides its response: it is
counted in the metrics, written to the access log, and, when the proxy
failed it, explained in the error log.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.logger import Logger, LogLevel

from .accesslog import AccessLog, logged_target
from .metrics import Metrics, RouteStats

#: The level of the error log line of each cause a request may fail with
#: (see L{ProxyRequest.error_cause}); a cause not listed is an error.  A
#: route in maintenance and a client's C{only-if-cached} are what was
#: asked for, and no backend is the balancer's answer to load, which its
#: own metrics count.
CAUSE_LEVELS = {
    "maintenance": LogLevel.info,
    "only_if_cached": LogLevel.info,
    "no_backend": LogLevel.warn,
}

#: The error log, a namespace of its own so that it can be filtered (a
#: class attribute would take the class's name).
errors = Logger(namespace="txrevproxy.errors")


class RequestObserver:
    """
    Counts and logs the finished requests of one listener, and ends their
    traces; a L{ProxySite} calls it with each (see L{ProxySite.log}).

    The stats of a route are looked up on its first request and kept by
    position, so that a later request costs a list index, and a route no
    request took has no series.  A request routed by another router (a
    reload re-pointed the listener's connections while it was in flight,
    or the other way round), or by a split route (by the side it took), is
    looked up by name.  A route is labelled
    with L{txrevproxy.config.model.Route.label}.

    C{router} is the listener's L{txrevproxy.routing.router.Router}; only
    its C{routes} are read, so this layer does not import the routing one.
    """

    def __init__(
        self,
        listener: str,
        router,
        metrics: Metrics,
        access_log: AccessLog,
        clock,
    ) -> None:
        self._listener = listener
        self._router = router
        self._metrics = metrics
        self._upstreams = [route.upstream for route in router.routes]
        self._labels = [route.label for route in router.routes]
        self._routes: List[Optional[RouteStats]] = [None] * len(router.routes)
        self._unrouted: Optional[RouteStats] = None
        self._access_log = access_log
        self._clock = clock

    def __call__(self, request) -> None:
        ended = request.ended
        if ended is None:
            ended = self._clock.seconds()
        duration = ended - request.started
        index = request.route_index
        if index is None:
            stats, upstream, label = self._unrouted, None, None
            if stats is None:
                stats = self._unrouted = self._metrics.route(self._listener, "none", None)
        elif request.split_side is not None:
            # A split route counts each side as its upstream.
            upstream, label = request.split_side, request.router.routes[index].label
            stats = self._metrics.route(self._listener, label, upstream)
        elif request.router is self._router:
            stats, upstream = self._routes[index], self._upstreams[index]
            label = self._labels[index]
            if stats is None:
                stats = self._routes[index] = self._metrics.route(
                    self._listener, label, upstream
                )
        else:
            route = request.router.routes[index]
            upstream, label = route.upstream, route.label
            stats = self._metrics.route(self._listener, label, upstream)
        stats.record(request.code, duration, request.bodyBytes, request.sentLength)
        upstream_time = request.upstream_time
        if upstream_time is not None and stats.upstream is not None:
            stats.upstream.response_time.observe(upstream_time)
        if request.timed_out is not None:
            self._metrics.timed_out(upstream, request.timed_out)
        if request.error_cause is not None:
            self._explain(request, label, upstream)
        if request.trace is not None:
            request.trace.finish(request, label, upstream, ended)
        self._access_log.record(request, duration, upstream, label)

    def _explain(self, request, route: Optional[str], upstream: Optional[str]) -> None:
        """
        The error log line of a request the proxy failed: answered with
        its own 5xx, or whose response it cut short.
        """
        cause = request.error_cause
        backend = request.backend
        code = request.code
        errors.emit(
            CAUSE_LEVELS.get(cause, LogLevel.error),
            "{what} ({reason}): request_id={request_id} listener={listener} "
            "route={route} upstream={upstream} backend={backend} "
            "{method} {uri}",
            what="%d" % (code,) if code >= 500 else "response cut short",
            status=code,
            reason=cause + ": " + request.error_detail if request.error_detail else cause,
            cause=cause,
            detail=request.error_detail,
            request_id=request.request_id.decode("ascii", "replace"),
            listener=self._listener,
            route=route or "-",
            upstream=upstream or "-",
            backend="-" if backend is None else "%s:%d" % (
                backend.server.host,
                backend.server.port,
            ),
            method=request.method.decode("ascii", "replace"),
            uri=logged_target(request).decode("ascii", "backslashreplace"),
        )
