"""
Assembling the resource tree of a configuration: each route's leaf (a
redirect, a fixed answer, or the proxy to its upstream, cached or not),
wrapped in the route's filters, under the router.  It is the one place the
rooms of the request's path are put together, so a reload swaps the whole
tree in one step.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from twisted.web.resource import IResource

from ..cache.resource import CachingProxyResource
from ..config.model import Config, Route
from ..filters.chain import FilteredResource
from ..forward.resource import ProxyTarget, ReverseProxyResource
from ..routing.redirects import RedirectResource, RespondResource
from ..routing.rewrite import HeaderRewrite, PathRewrite
from ..routing.router import Router, build_router


def build_root(
    config: Config,
    balancers: Dict[str, object],
    reactor,
    filters: Optional[Mapping[str, object]] = None,
    caches: Optional[Mapping[str, object]] = None,
) -> Router:
    """
    The resource tree of a configuration: the one place it is built, so
    a reload swaps it whole.

    @param balancers: the balancer of each upstream, by name.
    @param filters: the configured filters
        (L{txrevproxy.interfaces.IFilter}), by name.
    @param caches: the L{txrevproxy.cache.shared.SharedCache} of each
        C{[caches.NAME]} table, by name; a route whose cache is not there
        (as when only explaining routes) is not cached.
    """

    def resource_for(route: Route) -> IResource:
        resource = _route_resource(route)
        if route.filters:
            return FilteredResource([filters[name] for name in route.filters], resource)
        return resource

    def _route_resource(route: Route) -> IResource:
        response_rules = HeaderRewrite.for_rules(route.response_headers)
        if route.redirect is not None:
            return RedirectResource(route.redirect, response_rules)
        if route.respond is not None:
            return RespondResource(route.respond, response_rules)
        upstream = config.upstreams[route.upstream]
        preserve_host = (
            upstream.preserve_host
            if route.preserve_host is None
            else route.preserve_host
        )
        pages = {
            page.status: (page.body, page.content_type.encode("ascii"))
            for page in route.error_pages
        }
        target = ProxyTarget(
            balancers[route.upstream],
            reactor,
            upstream.response_timeout,
            preserve_host,
            upstream.tunnel_idle_timeout,
            path_rewrite=PathRewrite.for_route(route),
            request_rules=HeaderRewrite.for_rules(route.request_headers),
            response_rules=response_rules,
            error_pages=pages or None,
            pass_banners=(
                config.server.pass_backend_banners
                if route.pass_backend_banners is None
                else route.pass_backend_banners
            ),
        )
        cache = None if route.cache is None or caches is None else caches.get(route.cache)
        if cache is not None:
            return CachingProxyResource(target, cache)
        return ReverseProxyResource(target)

    return build_router(config.routes, resource_for)
