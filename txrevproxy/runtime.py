"""
The runtime: the live objects (balancers, pools, resource tree, sites)
built from one L{Config}.

A reload builds a whole new L{Runtime} from the new configuration and
swaps it in; nothing in a runtime is patched in place.
"""

from __future__ import annotations

from typing import Dict

from .balancer import Backend, Balancer
from .config.model import Config, Route
from .proxy.pool import ConnectionPool, backend_endpoint
from .proxy.resource import ProxyTarget, ReverseProxyResource
from .proxy.server import ProxySite
from .routing import build_router


class Runtime:
    """
    Everything that serves requests for one configuration.

    @ivar sites: the L{ProxySite} of each listener, by listener name.
    @ivar balancers: the L{Balancer} of each upstream, by upstream name.
    """

    def __init__(self, config: Config, reactor) -> None:
        self.config = config
        self.balancers: Dict[str, Balancer] = {}
        for name, upstream in config.upstreams.items():
            backends = [
                Backend(
                    server,
                    ConnectionPool(
                        reactor,
                        backend_endpoint(reactor, server, upstream.connect_timeout),
                        server.url,
                        idle_timeout=upstream.idle_timeout,
                        max_idle=upstream.max_idle_connections,
                    ),
                )
                for server in upstream.servers
            ]
            self.balancers[name] = Balancer(backends)

        def route_resource(route: Route) -> ReverseProxyResource:
            upstream = config.upstreams[route.upstream]
            preserve_host = (
                upstream.preserve_host
                if route.preserve_host is None
                else route.preserve_host
            )
            target = ProxyTarget(
                self.balancers[route.upstream],
                reactor,
                upstream.response_timeout,
                preserve_host,
                upstream.tunnel_idle_timeout,
            )
            return ReverseProxyResource(target)

        root = build_router(config.routes, route_resource)
        self.sites: Dict[str, ProxySite] = {
            name: ProxySite(root, reactor=reactor, settings=config.server)
            for name in config.listeners
        }

    def close(self) -> None:
        """
        Close the backend pools: idle connections now, busy ones when their
        exchanges end.
        """
        for balancer in self.balancers.values():
            balancer.close()
