"""
The routing tree: built from the configured routes by L{build_router}, it
chooses the route of each request and hands the request to the route's
resource.

A request is matched by host, then path, then the route's optional
matchers (see C{docs/routing.rst} for the rules as operators read them):

 1. The host picks a L{RouteTree}: the routes naming that host exactly,
    those naming it through a one-label wildcard (C{*.example.test}), and
    the routes that name no host.  A host no route names gets the tree of
    host-less routes, or 421 when there are none.
 2. In the tree, a node per path segment: the walk goes down as far as the
    normalised path (L{txrevproxy.http.target}) allows, so the longest prefix
    is tried first, whole segments only.
 3. Each node holds its candidates in a fixed order, worked out when the
    tree is built: higher C{priority} first, then exact host before
    wildcard before no host, then more matchers before fewer, then the
    order of the file.  The first candidate whose matchers accept the
    request wins; when none does, the walk falls back to the next shorter
    prefix.  The list is cut after the first candidate without matchers,
    since nothing behind it can win.

So a request costs a dictionary lookup per path segment and, for the
common route without matchers, nothing more.  L{Router.explain} answers
the same question with reasons, for C{txrevproxy route}, by calling the
same L{Router.select}.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import attr
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from ..config.model import Route
from ..http.target import normalize_path, path_segments, request_host, valid_host
from ..plugins import matcher_types
from ..server.answers import respond_with_error
from .matchers import Matchers, route_matchers

#: How a route names the host of a request, best first.
EXACT_HOST, WILDCARD_HOST, ANY_HOST = 0, 1, 2


class Candidate:
    """
    A route as one L{RouteTree} holds it.

    @ivar resource: what answers the requests it wins.
    @ivar matchers: its L{Matchers}, or L{None} when it has none.
    @ivar host_kind: how it names the tree's host: L{EXACT_HOST},
        L{WILDCARD_HOST} or L{ANY_HOST}.
    @ivar order: its sort key among the candidates of one path prefix.
    """

    __slots__ = ("route", "resource", "matchers", "host_kind", "order")

    def __init__(
        self,
        route: Route,
        resource: IResource,
        matchers: Optional[Matchers],
        host_kind: int,
    ) -> None:
        self.route = route
        self.resource = resource
        self.matchers = matchers
        self.host_kind = host_kind
        count = 0 if matchers is None else len(matchers.parts)
        self.order = (-route.priority, host_kind, -count, route.index)


class PathNode:
    """
    One path segment of a L{RouteTree}.

    @ivar children: the nodes of the next segments.
    @ivar own: the candidates whose prefix ends here, in order.
    @ivar chain: the candidates to try for a path that ends its walk here:
        its own, then those of the shorter prefixes, cut after the first
        without matchers.
    """

    __slots__ = ("children", "own", "chain")

    def __init__(self) -> None:
        self.children: Dict[bytes, PathNode] = {}
        self.own: List[Candidate] = []
        self.chain: Tuple[Candidate, ...] = ()


class RouteTree:
    """
    The routes that apply to one host, as a tree of path segments.

    @ivar miss: the status of a request no route matches: 404, or 421 for
        the tree of a host no route names when no route is host-less.
    @ivar members: the candidates by route index.
    @ivar description: which routes these are, for explanations.
    """

    def __init__(self, candidates: Sequence[Candidate], miss: int, description: str):
        self.root = PathNode()
        self.miss = miss
        self.description = description
        self.members = {candidate.route.index: candidate for candidate in candidates}
        for candidate in candidates:
            node = self.root
            for segment in path_segments(candidate.route.path.encode("ascii")):
                node = node.children.setdefault(segment, PathNode())
            node.own.append(candidate)
        _link(self.root, ())

    def nodes(self, path: bytes) -> List[PathNode]:
        """
        The nodes a normalised path walks through, root first.
        """
        nodes = [self.root]
        for segment in path_segments(path):
            child = nodes[-1].children.get(segment)
            if child is None:
                break
            nodes.append(child)
        return nodes


def _link(node: PathNode, inherited: Tuple[Candidate, ...]) -> None:
    node.own.sort(key=lambda candidate: candidate.order)
    chain = tuple(node.own) + inherited
    for position, candidate in enumerate(chain):
        if candidate.matchers is None:
            chain = chain[: position + 1]
            break
    node.chain = chain
    for child in node.children.values():
        _link(child, chain)


@attr.s(frozen=True, auto_attribs=True)
class Explanation:
    """
    Why a request goes where it goes (see L{Router.explain}).

    @ivar host: the request's host, as routing saw it.
    @ivar path: its normalised path, or L{None} when it has none.
    @ivar tree: the L{RouteTree} its host picked, or L{None}.
    @ivar chosen: the winning L{Candidate}, or the status answered.
    @ivar others: C{(route, reason)} for every route that did not win, in
        the order of the file.
    """

    host: bytes
    path: Optional[bytes]
    tree: Optional[RouteTree]
    chosen: Union[Candidate, int]
    others: Tuple[Tuple[Route, str], ...]


class Router(Resource):
    """
    The root resource of a listener: it chooses each request's route (see
    the module docstring) and lets the route's resource answer.

    @ivar routes: every route, in the order of the file.
    """

    isLeaf = True

    def __init__(
        self,
        routes: Sequence[Route],
        exact: Dict[bytes, RouteTree],
        wildcard: Dict[bytes, RouteTree],
        default: RouteTree,
    ) -> None:
        super().__init__()
        self.routes = tuple(routes)
        self._exact = exact
        self._wildcard = wildcard
        self._default = default
        self._by_host = bool(exact or wildcard)

    def tree_for(self, host: bytes) -> RouteTree:
        """
        The routes for a host: its exact name's, else its wildcard's, else
        the host-less routes'.
        """
        tree = self._exact.get(host)
        if tree is None:
            tree = self._wildcard.get(host.partition(b".")[2], self._default)
        return tree

    def select(self, request) -> Union[Candidate, int]:
        """
        The route of C{request}, or the status to answer when there is
        none: 400 for a Host or path that cannot be routed, 404 or 421.
        """
        host = request_host(request)
        if not valid_host(host):
            return 400
        # Without routes for named hosts, every host has the host-less ones.
        tree = self.tree_for(host) if self._by_host else self._default
        path = normalize_path(request.path)
        if path is None:
            return 400
        node = tree.root
        for segment in path[1:].split(b"/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
        for candidate in node.chain:
            matchers = candidate.matchers
            if matchers is None or matchers.matches(request):
                return candidate
        return tree.miss

    def render(self, request):
        chosen = self.select(request)
        if chosen.__class__ is int:
            respond_with_error(request, chosen)
            return NOT_DONE_YET
        request.routed(self, chosen.route.index)
        return chosen.resource.render(request)

    def explain(self, request) -> Explanation:
        """
        What L{select} chooses for C{request}, and why each other route
        lost.
        """
        chosen = self.select(request)
        host = request_host(request)
        path = normalize_path(request.path)
        if not valid_host(host) or path is None:
            return Explanation(host, path, None, chosen, ())
        tree = self.tree_for(host)
        tried = [
            candidate for node in reversed(tree.nodes(path)) for candidate in node.own
        ]
        others = []
        for route in self.routes:
            candidate = tree.members.get(route.index)
            if candidate is chosen:
                continue
            if candidate is None:
                reason = "host %s does not match" % (
                    " or ".join('"%s"' % (name,) for name in route.hosts),
                )
            elif candidate not in tried:
                reason = 'path "%s" is not under "%s"' % (
                    path.decode("ascii", "replace"),
                    route.path,
                )
            else:
                failure = (
                    None
                    if candidate.matchers is None
                    else candidate.matchers.failure(request)
                )
                if failure is not None:
                    reason = "does not match: %s" % (failure,)
                else:
                    reason = lost_to(candidate, chosen)
            others.append((route, reason))
        return Explanation(host, path, tree, chosen, tuple(others))


def lost_to(loser: Candidate, winner: Candidate) -> str:
    """
    Why C{loser}, which matches too, comes after C{winner}.
    """
    name = "routes[%d]" % (winner.route.index,)
    if winner.route.path != loser.route.path:
        return '%s has a longer prefix ("%s")' % (name, winner.route.path)
    if winner.route.priority != loser.route.priority:
        return "%s has a higher priority (%d > %d)" % (
            name,
            winner.route.priority,
            loser.route.priority,
        )
    if winner.host_kind != loser.host_kind:
        return "%s names the host %s" % (
            name,
            "exactly" if winner.host_kind == EXACT_HOST else "by a wildcard",
        )
    if winner.order[2] != loser.order[2]:
        return "%s has more matchers (%d > %d)" % (
            name,
            -winner.order[2],
            -loser.order[2],
        )
    return "%s comes first in the file" % (name,)


def _host_kind(route: Route, host: Optional[str]) -> Optional[int]:
    """
    How C{route} names C{host} (L{None}: the host no route names), or
    L{None} when it does not apply to it.
    """
    if not route.hosts:
        return ANY_HOST
    if host is None:
        return None
    if host in route.hosts:
        return EXACT_HOST
    if host.startswith("*."):
        return None
    if "*." + host.partition(".")[2] in route.hosts:
        return WILDCARD_HOST
    return None


def route_trees(
    made: Sequence[Tuple[Route, Optional[IResource], Optional[Matchers]]]
) -> Tuple[Dict[bytes, RouteTree], Dict[bytes, RouteTree], RouteTree]:
    """
    The trees of a router, in the order L{Router.select} tries them: a
    pure function of the routes, shared by L{build_router} and by the
    check for routes that can never match
    (L{txrevproxy.routing.shadows}), so that both see the same order.

    @param made: each route with its resource (L{None} where none is
        made) and its matchers (see L{route_matchers}).
    @return: the trees of the exact host names, of the wildcards (by the
        name after C{*.}), and of any other host.
    """

    def tree(host: Optional[str], miss: int, description: str) -> RouteTree:
        candidates = []
        for route, resource, matchers in made:
            kind = _host_kind(route, host)
            if kind is not None:
                candidates.append(Candidate(route, resource, matchers, kind))
        return RouteTree(candidates, miss, description)

    routes = [route for route, _, _ in made]
    names = {name for route in routes for name in route.hosts}
    exact = {
        name.encode("ascii"): tree(name, 404, 'the routes for host "%s"' % (name,))
        for name in names
        if not name.startswith("*.")
    }
    wildcard = {
        name[2:].encode("ascii"): tree(name, 404, 'the routes for hosts "%s"' % (name,))
        for name in names
        if name.startswith("*.")
    }
    hostless = any(not route.hosts for route in routes)
    default = tree(
        None,
        404 if hostless else 421,
        "the routes for any host" if hostless else "no route for this host",
    )
    return exact, wildcard, default


def build_router(
    routes: Sequence[Route], resource_for: Callable[[Route], IResource]
) -> Router:
    """
    The root resource for the configured routes.

    @param resource_for: makes the leaf resource of a route; called once
        per route.
    """
    # The plugin registry is read once per tree, not once per route.
    types = matcher_types()
    made = [
        (route, resource_for(route), route_matchers(route, types)) for route in routes
    ]
    return Router(routes, *route_trees(made))
