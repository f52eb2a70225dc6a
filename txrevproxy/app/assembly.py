"""
Assembling the resource tree of a configuration: each route's leaf (a
redirect, a fixed answer, or the proxy to its upstream, cached or not),
wrapped in the route's filters, under the router.  It is the one place the
rooms of the request's path are put together, so a reload swaps the whole
tree in one step.
"""

from __future__ import annotations

import math
from random import Random
from typing import Dict, Mapping, Optional, Sequence

from twisted.web.resource import IResource

from ..cache.resource import CachingProxyResource
from ..config.model import Config, ErrorPage, Route
from ..filters.chain import FilteredResource
from ..forward.maintenance import MaintenanceSwitch
from ..forward.mirror import Mirror
from ..forward.resource import ProxyTarget, ReverseProxyResource
from ..forward.split import SplitResource
from ..observe.metrics import Metrics
from ..routing.redirects import RedirectResource, RespondResource
from ..routing.response_rewrite import ResponseRewrite
from ..routing.rewrite import HeaderRewrite, PathRewrite
from ..routing.router import Router, build_router
from ..routing.split import SplitChooser
from ..server.answers import Page


def page_table(pages: Sequence[ErrorPage]) -> Optional[Dict[int, Page]]:
    """
    The error pages of a route or a listener as the answers use them: each
    C{(body, content type)} by status; L{None} when there are none.
    """
    table = {
        page.status: (page.body, page.content_type.encode("ascii")) for page in pages
    }
    return table or None


def maintenance_switches(
    routes: Sequence[Route], previous: Mapping[str, MaintenanceSwitch]
) -> Dict[int, MaintenanceSwitch]:
    """
    The maintenance switch of each forwarding route, by index: a named
    route keeps the switch it had under the same name before a reload
    (C{previous}), so a reload does not end its maintenance; any other
    gets a new one, off.
    """
    switches = {}
    for route in routes:
        if route.forwards:
            switch = None if route.name is None else previous.get(route.name)
            switches[route.index] = MaintenanceSwitch() if switch is None else switch
    return switches


def build_root(
    config: Config,
    balancers: Dict[str, object],
    reactor,
    filters: Optional[Mapping[str, object]] = None,
    caches: Optional[Mapping[str, object]] = None,
    switches: Optional[Mapping[int, MaintenanceSwitch]] = None,
    metrics: Optional[Metrics] = None,
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
    @param switches: the L{MaintenanceSwitch} of each forwarding route, by
        index; a route without one gets its own (it stays off).
    @param metrics: what counts the copies of mirrored routes (a
        L{Metrics} of their own when not given, as when only explaining).
    """
    if metrics is None:
        metrics = Metrics()
    # The draws of splits and mirrors (SplitChooser and Mirror take it,
    # so that their tests inject a seeded one).
    random = Random()

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
        mirror = None
        if route.mirror is not None:
            mirror = Mirror(
                _target(route, route.mirror, response_rules, mirrored=True),
                route.label,
                route.mirror,
                route.mirror_percent,
                route.mirror_max_body,
                random,
                metrics,
            )
        if not route.upstreams:
            return _proxy(route, route.upstream, response_rules, mirror)
        return SplitResource(
            SplitChooser(route.upstreams, random, route.split_cookie, route.split_override),
            {
                side.name: _proxy(route, side.name, response_rules, mirror)
                for side in route.upstreams
            },
            route.split_cookie,
            route.path,
        )

    def _proxy(route: Route, name: str, response_rules, mirror) -> IResource:
        target = _target(route, name, response_rules, mirror=mirror)
        cache = None if route.cache is None or caches is None else caches.get(route.cache)
        if cache is not None:
            return CachingProxyResource(target, cache)
        return ReverseProxyResource(target)

    def _target(
        route: Route, name: str, response_rules, mirror=None, mirrored: bool = False
    ) -> ProxyTarget:
        """
        The target of C{route}'s requests to the upstream C{name}: its own
        upstream, a side of its split, or (C{mirrored}) its mirror, whose
        timeouts C{mirror_timeout} caps.
        """
        upstream = config.upstreams[name]
        preserve_host = (
            upstream.preserve_host
            if route.preserve_host is None
            else route.preserve_host
        )

        def timeout(key: str) -> Optional[float]:
            value = route.timeout(upstream, key)
            if mirrored:
                # A copy never outlasts mirror_timeout (None and 0 are no
                # limit of its own).
                return min(value or route.mirror_timeout, route.mirror_timeout)
            return value

        pages = page_table(route.error_pages)
        path_rewrite = PathRewrite.for_route(route)
        return ProxyTarget(
            balancers[name],
            reactor,
            timeout("response_timeout"),
            preserve_host,
            upstream.tunnel_idle_timeout,
            path_rewrite=path_rewrite,
            request_rules=HeaderRewrite.for_rules(route.request_headers),
            response_rules=response_rules,
            error_pages=pages,
            intercept_errors=frozenset(route.intercept_errors) or None,
            maintenance=None if switches is None else switches.get(route.index),
            maintenance_retry_after=max(1, math.ceil(route.maintenance_retry_after)),
            forwarded=config.server.forwarded == "add",
            connect_timeout=timeout("connect_timeout"),
            read_timeout=timeout("read_timeout"),
            send_timeout=timeout("send_timeout"),
            total_timeout=timeout("total_timeout") or 0.0,
            response_rewrite=ResponseRewrite.for_route(
                route, upstream, preserve_host, path_rewrite
            ),
            pass_banners=(
                config.server.pass_backend_banners
                if route.pass_backend_banners is None
                else route.pass_backend_banners
            ),
            mirror=mirror,
        )

    return build_router(config.routes, resource_for)
