"""
What happens to each finished request besides its response: it is
counted in the metrics and written to the access log.
"""

from __future__ import annotations

from .accesslog import AccessLog
from .metrics import Metrics


class RequestObserver:
    """
    Counts and logs the finished requests of one listener; a L{ProxySite}
    calls it with each (see L{ProxySite.log}).

    The stats of every route of C{router} are looked up here, once per
    configuration, so that a request costs a list index.  A request routed
    by another router (a reload re-pointed the listener's connections while
    it was in flight, or the other way round) is looked up by name.

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
        self._routes = [
            metrics.route(listener, str(route.index), route.upstream)
            for route in router.routes
        ]
        self._unrouted = metrics.route(listener, "none", None)
        self._access_log = access_log
        self._clock = clock

    def __call__(self, request) -> None:
        duration = self._clock.seconds() - request.started
        index = request.route_index
        if index is None:
            stats, upstream = self._unrouted, None
        elif request.router is self._router:
            stats, upstream = self._routes[index], self._upstreams[index]
        else:
            upstream = request.router.routes[index].upstream
            stats = self._metrics.route(self._listener, str(index), upstream)
        stats.record(request.code, duration, request.bodyBytes, request.sentLength)
        upstream_time = request.upstream_time
        if upstream_time is not None and stats.upstream is not None:
            stats.upstream.response_time.observe(upstream_time)
        if request.timed_out is not None:
            self._metrics.timed_out(upstream, request.timed_out)
        self._access_log.record(request, duration, upstream)
