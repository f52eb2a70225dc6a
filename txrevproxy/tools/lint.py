"""
What C{txrevproxy check} warns about in a valid configuration: what it
says that can never take effect.  A route that can never match (another
route takes every request it would, see L{txrevproxy.routing.shadows}),
and an upstream, filter, cache or TLS table that nothing uses.  Each
warning is a sentence starting with its key path, as problems are; they do
not keep the proxy from starting (C{--strict} makes C{check} fail on
them).
"""

from __future__ import annotations

from typing import Iterable, List, Mapping, Optional

from ..config.model import Config, Route
from ..config.schema import key_path
from ..routing.shadows import shadowed_routes


def _route_name(route: Route) -> str:
    return "routes[%d]" % (route.index,)


def shadow_warnings(config: Config) -> List[str]:
    """
    A warning for each route that can never match, naming the routes that
    take its requests and why they come first.
    """
    warnings = []
    for route, takers in shadowed_routes(config.routes):
        names = " and ".join(
            '%s (path "%s")' % (_route_name(taker), taker.path) for taker, _ in takers
        )
        reasons = "; ".join(reason for _, reason in takers)
        warnings.append(
            "%s: never matches: %s %s every request it would: %s"
            % (
                _route_name(route),
                names,
                "takes" if len(takers) == 1 else "take",
                reasons,
            )
        )
    return warnings


def _unused(
    table: str, defined: Mapping[str, object], used: Iterable[Optional[str]], by: str
) -> List[str]:
    wanted = set(used)
    return [
        "%s%s: unused: no %s names it" % (table, key_path(name), by)
        for name in defined
        if name not in wanted
    ]


def unused_warnings(config: Config) -> List[str]:
    """
    A warning for each upstream, filter, cache or TLS table that no route
    or listener names: defined, then forgotten, or a typo's victim.
    """
    routes = config.routes
    listeners = config.listeners.values()
    return (
        _unused(
            "upstreams",
            config.upstreams,
            [name for r in routes for name in r.upstream_names + (r.mirror,)],
            "route",
        )
        + _unused(
            "filters",
            config.filters,
            [name for r in routes for name in r.filters]
            + [name for l in listeners for name in l.filters],
            "route or listener",
        )
        + _unused("caches", config.caches, (r.cache for r in routes), "route")
        + _unused("tls", config.tls, (l.tls for l in listeners), "listener")
    )


def check_warnings(config: Config) -> List[str]:
    """
    Every warning about C{config}, routes first.
    """
    return shadow_warnings(config) + unused_warnings(config)
