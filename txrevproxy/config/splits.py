"""
The keys of a route that splits its requests between upstreams
(C{upstreams}, C{split_cookie}, C{split_override}) or copies them to
another (C{mirror} and its limits), and their checks: the relations
between these keys and the route's others, and the names they refer to.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping

from .model import SplitOverride, SplitSide
from .schema import (
    MODEL_DEFAULT,
    Field,
    Problem,
    Table,
    array_of,
    key_path,
    missing_reference,
)
from .values import cookie_name, duration, header_name, integer, name, percent, size

SPLIT_SIDE = Table(
    SplitSide,
    {"name": Field(name), "weight": Field(integer(minimum=1), default=1)},
)


def _header_or_cookie(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if not arguments:
        yield ("", "needs a header, a cookie or both")


SPLIT_OVERRIDE = Table(
    SplitOverride,
    {
        "header": Field(header_name, default=MODEL_DEFAULT),
        "cookie": Field(cookie_name, default=MODEL_DEFAULT),
    },
    checks=(_header_or_cookie,),
)

#: The split and mirror keys of a C{[[routes]]} table.
FIELDS = {
    "upstreams": Field(
        array_of(
            SPLIT_SIDE,
            min_items=1,
            what='an array such as [{ name = "old", weight = 90 }, '
            '{ name = "new", weight = 10 }]',
        ),
        default=MODEL_DEFAULT,
    ),
    "split_cookie": Field(cookie_name, default=MODEL_DEFAULT),
    "split_override": Field(SPLIT_OVERRIDE, default=MODEL_DEFAULT),
    "mirror": Field(name, default=MODEL_DEFAULT),
    "mirror_percent": Field(percent, default=MODEL_DEFAULT),
    "mirror_max_body": Field(size, default=MODEL_DEFAULT),
    "mirror_timeout": Field(duration, default=MODEL_DEFAULT),
}

#: The keys that only mean something with C{upstreams}, and with C{mirror}.
SPLIT_KEYS = ("split_cookie", "split_override")
MIRROR_KEYS = ("mirror_percent", "mirror_max_body", "mirror_timeout")


def split_problems(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The relations of the split and mirror keys with each other and with
    the route's C{cache}: a route's check, run once its keys converted.
    """
    sides = arguments.get("upstreams", ())
    seen = set()
    for index, side in enumerate(sides):
        if side.name in seen:
            yield (
                ".upstreams[%d].name" % (index,),
                'upstream "%s" is already a side of this split' % (side.name,),
            )
        seen.add(side.name)
    for keys, needed in ((SPLIT_KEYS, "upstreams"), (MIRROR_KEYS, "mirror")):
        if needed not in arguments:
            for key in keys:
                if key in arguments:
                    yield (key_path(key), "only a route with %s can use it" % (needed,))
    if sides and "cache" in arguments:
        yield (
            ".cache",
            "a route with upstreams (a split) is not cached: one stored response "
            "would be served to clients of every side; cache the sides' own "
            "routes, or end the split first",
        )


def split_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    Every side of a split must name an upstream; checked on the document
    as parsed, as a route's C{upstream} is.
    """
    named = data.get("upstreams")
    routes = data.get("routes")
    if not isinstance(named, dict) or not isinstance(routes, list):
        return
    for index, route in enumerate(routes):
        sides = route.get("upstreams") if isinstance(route, dict) else None
        if not isinstance(sides, list):
            continue
        for position, side in enumerate(sides):
            wanted = side.get("name") if isinstance(side, dict) else None
            message = missing_reference(wanted, named, "upstream")
            if message:
                yield ("routes[%d].upstreams[%d].name" % (index, position), message)
