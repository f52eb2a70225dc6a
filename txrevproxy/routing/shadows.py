"""
Routes that can never match: every request one of them would take goes to
a route the router tries before it, for C{txrevproxy check} to warn about.

The answer is read off the router's own trees (L{route_trees}), not worked
out again: a route can match a request only if it is in the list of
candidates (L{PathNode.chain}) of the node its path prefix ends at, in one
of the trees of the hosts it names.  That list is cut after the first
candidate without matchers, which takes every request that reaches it; a
route left out of every such list is shadowed.  It is conservative on
purpose: a route tried first that has matchers of its own never counts as
shadowing another, since whether its matchers cover the other's is not
known in general (a plugin's matchers least of all).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from ..config.model import Route
from ..plugins import matcher_types
from .matchers import route_matchers
from .router import Candidate, lost_to, route_trees


def shadowed_routes(
    routes: Sequence[Route],
) -> List[Tuple[Route, Tuple[Tuple[Route, str], ...]]]:
    """
    The routes that can never match, in the order of the file.

    @return: each shadowed route with the routes that take its requests,
        each with why it comes first (as C{txrevproxy route} says it).
    """
    types = matcher_types()
    exact, wildcard, default = route_trees(
        [(route, None, route_matchers(route, types)) for route in routes]
    )
    reachable = set()
    takers: Dict[int, Dict[int, str]] = {}
    for tree in list(exact.values()) + list(wildcard.values()) + [default]:
        for index, candidate in tree.members.items():
            node = tree.nodes(candidate.route.path.encode("ascii"))[-1]
            if candidate in node.chain:
                reachable.add(index)
            else:
                taker: Candidate = node.chain[-1]
                takers.setdefault(index, {})[taker.route.index] = lost_to(
                    candidate, taker
                )
    by_index = {route.index: route for route in routes}
    return [
        (
            route,
            tuple(
                (by_index[index], reason)
                for index, reason in sorted(takers[route.index].items())
            ),
        )
        for route in routes
        if route.index in takers and route.index not in reachable
    ]
