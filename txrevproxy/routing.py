"""
Builds the C{twisted.web} resource tree from the configured routes.

The root is a L{HostRouter}: it picks the path tree of the request's host
(exact name, then a one-label wildcard, then the routes that name no host).
Each path tree has a L{PathNode} per path segment, so C{Site}'s ordinary
traversal finds the longest matching prefix: a node that has no child for
the next segment answers with the nearest route at or above it.  Prefixes
therefore match whole segments: C{/api} covers C{/api} and C{/api/v1} but
not C{/apix}.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Tuple

from twisted.web.resource import IResource, Resource

from .config.model import Route
from .proxy.errors import ErrorResource

_NOT_FOUND = ErrorResource(404)


class PathNode(Resource):
    """
    One path segment of a path tree.

    @ivar route: the resource of the nearest route at or above this node,
        or L{None} when no route covers it.
    """

    def __init__(self, route: Optional[IResource] = None) -> None:
        super().__init__()
        self.route = route

    def getChildWithDefault(self, segment: bytes, request) -> IResource:
        child = self.children.get(segment)
        if child is not None:
            return child
        return self.route or _NOT_FOUND

    def render(self, request):
        return (self.route or _NOT_FOUND).render(request)


def _segments(path: str) -> List[bytes]:
    return [segment.encode("utf-8") for segment in path.strip("/").split("/") if segment]


def build_path_tree(routes: Iterable[Tuple[str, IResource]]) -> PathNode:
    """
    A path tree for C{(prefix, resource)} pairs; a later pair with the same
    prefix replaces an earlier one.
    """
    root = PathNode()
    for prefix, resource in routes:
        node = root
        for segment in _segments(prefix):
            child = node.children.get(segment)
            if child is None:
                child = PathNode()
                node.putChild(segment, child)
            node = child
        node.route = resource
    _inherit(root, None)
    return root


def _inherit(node: PathNode, inherited: Optional[IResource]) -> None:
    """
    Give every node without a route of its own the nearest one above it.
    """
    if node.route is None:
        node.route = inherited
    for child in node.children.values():
        _inherit(child, node.route)


def request_host(request) -> bytes:
    """
    The lower-cased host name a request is for, without port or trailing
    dot.
    """
    host = request.requestHeaders.getRawHeaders(b"host", [b""])[0].lower()
    if host.startswith(b"["):
        host = host[: host.find(b"]") + 1]
    else:
        host = host.split(b":", 1)[0]
    return host.rstrip(b".")


class HttpsRedirect(Resource):
    """
    The root of a listener with C{redirect_to_https}: every request gets a
    308 (method and body kept, RFC 9110 section 15.4.9) to the same host
    and target on the HTTPS listener's port.

    @param https_port: returns the port the HTTPS listener listens on,
        known once it listens.
    """

    isLeaf = True

    def __init__(self, https_port: Callable[[], int]) -> None:
        super().__init__()
        self._https_port = https_port

    def render(self, request) -> bytes:
        port = self._https_port()
        authority = request_host(request)
        if port != 443:
            authority += b":%d" % (port,)
        request.setResponseCode(308)
        request.setHeader(b"Location", b"https://" + authority + request.uri)
        return b""


class HostRouter(Resource):
    """
    The root resource: chooses a path tree by the request's host.
    """

    def __init__(
        self,
        exact: Dict[bytes, PathNode],
        wildcard: Dict[bytes, PathNode],
        default: PathNode,
    ) -> None:
        super().__init__()
        self._exact = exact
        self._wildcard = wildcard
        self._default = default

    def tree_for(self, request) -> PathNode:
        """
        The path tree for the request's host.
        """
        host = request_host(request)
        tree = self._exact.get(host)
        if tree is None:
            tree = self._wildcard.get(host.partition(b".")[2], self._default)
        return tree

    def getChildWithDefault(self, segment: bytes, request) -> IResource:
        return self.tree_for(request).getChildWithDefault(segment, request)

    def render(self, request):
        return self.tree_for(request).render(request)


def build_router(
    routes: Iterable[Route], resource_for: Callable[[Route], IResource]
) -> HostRouter:
    """
    The root resource for the configured routes.

    Routes that name no host apply to every host; where a host's own route
    has the same prefix, the host's route wins.

    @param resource_for: makes the leaf resource of a route.
    """
    routes = list(routes)
    hostless = [(r.path, resource_for(r)) for r in routes if not r.hosts]
    per_host: Dict[str, List[Tuple[str, IResource]]] = {}
    for route in routes:
        if route.hosts:
            resource = resource_for(route)
            for host in route.hosts:
                per_host.setdefault(host, []).append((route.path, resource))
    exact: Dict[bytes, PathNode] = {}
    wildcard: Dict[bytes, PathNode] = {}
    for host, pairs in per_host.items():
        tree = build_path_tree(hostless + pairs)
        if host.startswith("*."):
            wildcard[host[2:].encode("idna")] = tree
        else:
            exact[host.encode("idna")] = tree
    return HostRouter(exact, wildcard, build_path_tree(hostless))
