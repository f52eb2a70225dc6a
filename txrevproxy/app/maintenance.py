"""
The routes as the admin API shows them, and their maintenance switches
(see L{txrevproxy.forward.maintenance}) found by the name or index an
operator gives.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ..config.model import Route
from ..forward.maintenance import MaintenanceSwitch


def route_states(
    routes: Sequence[Route], switches: Mapping[int, MaintenanceSwitch]
) -> List[Dict[str, Any]]:
    """
    Each route as plain data: its index, name, hosts, path, upstream and
    whether it is in maintenance (L{None} for a route that does not
    forward, which has no switch).
    """
    states = []
    for route in routes:
        switch = switches.get(route.index)
        states.append(
            {
                "index": route.index,
                "name": route.name,
                "hosts": list(route.hosts),
                "path": route.path,
                "upstream": route.upstream,
                "maintenance": None if switch is None else switch.on,
            }
        )
    return states


def find_route(
    routes: Sequence[Route], switches: Mapping[int, MaintenanceSwitch], key: str
) -> Route:
    """
    The route an admin URL names: by its C{name}, or by its index in
    C{routes} (route names never start with a digit).

    @raise KeyError: no such route, or one that does not forward (a
        redirect or a fixed answer has no maintenance).
    """
    if key.isdigit():
        index = int(key)
        route = routes[index] if index < len(routes) else None
    else:
        route = next((each for each in routes if each.name == key), None)
    if route is None:
        raise KeyError("no route named %s" % (key,))
    if route.index not in switches:
        raise KeyError(
            "routes[%d] answers without an upstream: it has no maintenance"
            % (route.index,)
        )
    return route
