"""
What a route changes in what it forwards: the path sent to the backend
(C{strip_prefix}, C{add_prefix}, C{rewrite}) and header rules for the
request and the response.

Both are built once per route from the configuration; a route without
rewriting has neither object, so its requests pay nothing for them.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..config.model import HeaderRules, Route
from ..http.headers import folded_name
from ..http.target import normalize_path, path_segments

Header = Tuple[bytes, bytes]


class PathRewrite:
    """
    The request target sent to the backend for a route that rewrites it.

    Rewriting works on the normalised path (see L{txrevproxy.http.target}), so
    that C{/api/../admin} is never turned into something a prefix
    rule did not expect: C{strip_prefix} removes the route's own prefix,
    C{add_prefix} puts a prefix in front, then C{rewrite} replaces the
    first match of its expression.  The query is kept as the client sent
    it; when the rewritten path has a query of its own, the client's is
    appended to it after C{&}.
    """

    #: The prefix removed from every path, as the backend is told in
    #: X-Forwarded-Prefix (C{/api}); L{None} when none is.
    stripped_prefix: Optional[bytes] = None

    def __init__(self, route: Route) -> None:
        self._strip = (
            len(path_segments(route.path.encode("ascii"))) if route.strip_prefix else 0
        )
        if self._strip:
            self.stripped_prefix = route.path.encode("ascii")
        prefix = route.add_prefix or "/"
        self._add = b"" if prefix == "/" else prefix.encode("ascii")
        regex = route.rewrite
        self._pattern = None if regex is None else regex.pattern
        self._expansion = None if regex is None else regex.expansion

    @classmethod
    def for_route(cls, route: Route) -> Optional["PathRewrite"]:
        """
        The rewrite of a route, or L{None} when it sends paths unchanged.
        """
        if route.strip_prefix or route.add_prefix or route.rewrite:
            return cls(route)
        return None

    def target(self, request) -> bytes:
        """
        The request target (path and query) to send for C{request}.
        """
        # The router refused the request already if its path cannot be
        # normalised.
        path = normalize_path(request.path)
        if self._strip:
            path = b"/" + b"/".join(path.split(b"/")[1 + self._strip :])
        path = self._add + path
        if self._pattern is not None:
            path = self._pattern.sub(self._expansion, path, count=1)
            if not path.startswith(b"/"):
                path = b"/" + path
        _, question, query = request.uri.partition(b"?")
        if question:
            path += (b"&" if b"?" in path else b"?") + query
        return path


class HeaderRewrite:
    """
    A route's header rules, applied to a list of C{(name, value)} pairs:
    C{remove} and C{set} drop every field of their names (spelled with
    C{_} too, which CGI, WSGI, PHP and Rack read as the same name, so a
    client's C{X_Real_IP} cannot ride along the C{X-Real-IP} a rule sets),
    then C{set} and C{add} append theirs, their values expanded for the
    request.
    """

    def __init__(self, rules: HeaderRules) -> None:
        self._drop = frozenset(
            folded_name(name.encode("ascii"))
            for name in list(rules.remove) + [name for name, _ in rules.set]
        )
        self._append = tuple(
            (name.encode("ascii"), template) for name, template in rules.set + rules.add
        )

    @classmethod
    def for_rules(cls, rules: Optional[HeaderRules]) -> Optional["HeaderRewrite"]:
        """
        The rewrite of some rules, or L{None} when there are none.
        """
        if rules is None or not (rules.set or rules.add or rules.remove):
            return None
        return cls(rules)

    def apply(self, headers: List[Header], request) -> List[Header]:
        """
        The headers with the rules applied, for C{request}.  A C{Host} the
        rules set stays the first header.
        """
        drop = self._drop
        out = (
            [pair for pair in headers if folded_name(pair[0]) not in drop]
            if drop
            else list(headers)
        )
        for name, template in self._append:
            if name.lower() == b"host":
                out.insert(0, (name, template.expand(request)))
            else:
                out.append((name, template.expand(request)))
        return out
