"""
The optional conditions of a route besides host and path: the built-in
C{methods}, C{headers} and C{query} matchers, and L{route_matchers}, which
makes a route's matchers, built-in or a plugin's, through the installed
L{txrevproxy.interfaces.IMatcherType}s.

Each matcher (an L{IMatcher}) is built once from the configuration and
asked one question per request, C{matches}; its C{description} says what
it wants, so that C{txrevproxy route} can tell why a route did not match
without a second implementation of the test.  A route without matchers
has none of these objects, and its requests pay nothing for them.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qsl

from zope.interface import implementer

from ..config.model import Route, ValueMatch
from ..interfaces import IMatcher
from ..plugins import matcher_types


def _value_test(match: ValueMatch) -> Callable[[Optional[List[str]]], bool]:
    """
    A test of the values a request has for a header or parameter (L{None}
    when it has none): true when one of them satisfies C{match}.
    """
    if match.kind == "exact":
        wanted = match.value
        return lambda values: values is not None and wanted in values
    if match.kind == "regex":
        search = match.pattern.search
        return lambda values: values is not None and any(
            search(value) for value in values
        )
    if match.kind == "present":
        return lambda values: values is not None
    return lambda values: values is None


def _value_description(match: ValueMatch) -> str:
    if match.kind == "exact":
        return "= %s" % (json.dumps(match.value),)
    if match.kind == "regex":
        return "~ %s" % (json.dumps(match.pattern.pattern),)
    return match.kind


@implementer(IMatcher)
class MethodMatcher:
    """
    The request's method is one of a list.
    """

    def __init__(self, methods: Sequence[str]) -> None:
        self._methods = frozenset(method.encode("ascii") for method in methods)
        self.description = "method is %s" % (" or ".join(methods),)

    def matches(self, request) -> bool:
        return request.method in self._methods


@implementer(IMatcher)
class HeaderMatcher:
    """
    One of the request's fields of a header satisfies a L{ValueMatch}.
    """

    def __init__(self, name: str, match: ValueMatch) -> None:
        self._name = name.encode("ascii")
        self._test = _value_test(match)
        self.description = "header %s %s" % (name, _value_description(match))

    def matches(self, request) -> bool:
        values = request.requestHeaders.getRawHeaders(self._name)
        if values is not None:
            values = [value.decode("utf-8", "surrogateescape") for value in values]
        return self._test(values)


@implementer(IMatcher)
class QueryMatcher:
    """
    One of the values of a query parameter (percent-decoded, C{+} as a
    space) satisfies a L{ValueMatch}.
    """

    def __init__(self, name: str, match: ValueMatch) -> None:
        self._name = name
        self._test = _value_test(match)
        self.description = "query %s %s" % (name, _value_description(match))

    def matches(self, request) -> bool:
        query = request.uri.partition(b"?")[2].decode("utf-8", "surrogateescape")
        values = [
            value
            for name, value in parse_qsl(query, keep_blank_values=True)
            if name == self._name
        ]
        return self._test(values or None)


class Matchers:
    """
    All the matchers of one route: a request matches when each does.

    @ivar parts: the matchers, cheapest first.
    """

    def __init__(self, parts: Sequence) -> None:
        self.parts = tuple(parts)

    def matches(self, request) -> bool:
        for part in self.parts:
            if not part.matches(request):
                return False
        return True

    def failure(self, request) -> Optional[str]:
        """
        The description of the first matcher C{request} fails, or L{None}.
        """
        for part in self.parts:
            if not part.matches(request):
                return part.description
        return None


def method_matchers(methods: Sequence[str]) -> Tuple[MethodMatcher]:
    """
    The matchers of the built-in C{methods} type: one for the list.
    """
    return (MethodMatcher(methods),)


def header_matchers(pairs: Sequence[Tuple[str, ValueMatch]]) -> List[HeaderMatcher]:
    """
    The matchers of the built-in C{headers} type: one per header.
    """
    return [HeaderMatcher(name, match) for name, match in pairs]


def query_matchers(pairs: Sequence[Tuple[str, ValueMatch]]) -> List[QueryMatcher]:
    """
    The matchers of the built-in C{query} type: one per parameter.
    """
    return [QueryMatcher(name, match) for name, match in pairs]


def route_matchers(
    route: Route, types: Optional[Mapping[str, Any]] = None
) -> Optional[Matchers]:
    """
    The matchers of a route, made by the types its L{Route.matchers} name,
    in that order (the built-in keys' first, which are cheap, then the
    C{match} table's); L{None} when it has none.

    @param types: the installed matcher types (L{matcher_types}), looked
        up once by a caller that builds many routes; looked up here if not
        given.
    """
    wanted = route.matchers
    if not wanted:
        return None
    if types is None:
        types = matcher_types()
    parts = [
        part
        for matcher in wanted
        for part in types[matcher.type].matchers(matcher.settings)
    ]
    return Matchers(parts) if parts else None
