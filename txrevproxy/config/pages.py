"""
The keys of the proxy's own answers, shared by C{[listeners.NAME]} and
C{[[routes]]}: C{error_pages}; and a route's C{name} and
C{intercept_errors}, which the admin API and the exchange use.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Sequence, Tuple

from .model import ErrorPage, Route
from .schema import Invalid, Problem, array_of, converted_pairs, expected
from .values import file_path

#: The statuses that may have a page: every error the proxy answers with
#: (400 to 431 from reading the request, 404 and 421 from routing, a
#: filter's refusal, 500 to 504 from forwarding) and any other 4xx or 5xx
#: a filter or an intercepted backend may give.
LOWEST_PAGE, HIGHEST_PAGE = 400, 599


def error_status(value: Any) -> int:
    """
    An error status, 400 to 599.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise expected("a status code", value)
    if not LOWEST_PAGE <= value <= HIGHEST_PAGE:
        raise Invalid(
            "expected a status from %d to %d, got %d" % (LOWEST_PAGE, HIGHEST_PAGE, value)
        )
    return value


def error_pages(value: Any) -> Tuple[ErrorPage, ...]:
    """
    C{error_pages}: C{{ 502 = "path/to/page.html", ... }}; the files are
    read by the loader (L{txrevproxy.config.files.read_error_pages}).
    """
    if not isinstance(value, dict) or not value:
        raise expected('a table such as { 502 = "errors/502.html" }', value)
    pairs = converted_pairs(
        value, lambda key: error_status(int(key) if key.isdigit() else key), file_path
    )
    pages = (ErrorPage(status, path) for status, path in pairs)
    return tuple(sorted(pages, key=lambda page: page.status))


_intercepted = array_of(
    error_status, min_items=1, what="an array of statuses such as [500, 502, 503]"
)


def intercepted_statuses(value: Any) -> Tuple[int, ...]:
    """
    A route's C{intercept_errors}: the backend statuses whose body the
    route's error page of that status replaces.
    """
    return tuple(sorted(set(_intercepted(value))))


_ROUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}\Z")


def route_name(value: Any) -> str:
    """
    A route's C{name}: letters, digits, C{_}, C{.} and C{-}, not starting
    with a digit, so that it reads in an admin URL and is never taken for
    a route's index.
    """
    if not isinstance(value, str) or not _ROUTE_NAME.match(value):
        raise expected(
            'a name of letters, digits, "_", "." and "-" that does not start '
            "with a digit",
            value,
        )
    return value


def route_name_problems(routes: Sequence[Route]) -> Iterable[Problem]:
    """
    Two routes with one name: the admin API could not tell them apart.
    """
    seen: Dict[str, int] = {}
    for route in routes:
        if route.name is None:
            continue
        first = seen.setdefault(route.name, route.index)
        if first != route.index:
            yield (
                "routes[%d].name" % (route.index,),
                '"%s" is the name of routes[%d] already' % (route.name, first),
            )
