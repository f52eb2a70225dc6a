"""
The schema of C{[filters.NAME]} tables and of the C{filters} lists of routes
and listeners.

A filter table has a C{type}, the name of an installed
L{txrevproxy.interfaces.IFilterType}, and options that only that type
knows: the type's C{configure} checks them, here when the configuration
is loaded, so that C{txrevproxy check} reports a bad option with its key
path like any other problem.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..interfaces import FilterContext
from ..plugins import filter_types
from .model import FilterConfig
from .schema import (
    Invalid,
    Problem,
    array_of,
    describe,
    expected,
    key_path,
    missing_reference,
)
from .values import name


def filter_table(value: Any, name: str) -> FilterConfig:
    """
    A C{[filters.NAME]} table: its C{type} must be installed, and the type
    must accept the other keys.
    """
    if not isinstance(value, dict):
        raise expected("a table with a type", value)
    kind = value.get("type")
    if kind is None:
        raise Invalid(problems=[(".type", "required key is missing")])
    types = filter_types()
    if kind not in types:
        known = ", ".join('"%s"' % (known,) for known in sorted(types))
        raise Invalid(
            problems=[
                (
                    ".type",
                    "unknown filter type %s; installed types: %s"
                    % (describe(kind), known),
                )
            ]
        )
    options = {key: item for key, item in value.items() if key != "type"}
    return FilterConfig(name, kind, MappingProxyType(options))


def configure_filter(
    table: FilterConfig,
    reactor,
    server,
    directory: str,
    redis: Mapping[str, Any] = {},
    metrics: Any = None,
    workers: int = 1,
):
    """
    Make the filter of a C{[filters.NAME]} table with its type.

    @param reactor: the reactor, or L{None} when only checking.
    @param redis: the clients of the C{[redis.NAME]} tables, by name
        (each L{None} when only checking).
    @param metrics: the process's L{txrevproxy.observe.metrics.Metrics}
        (L{None} when only checking).
    @param workers: the processes the filter's process shares the machine
        with (C{[server] workers}), itself included.
    @raise Invalid: with the type's problems, their paths relative to the
        table.
    """
    context = FilterContext(
        table.name, reactor, server, directory, redis, metrics, workers
    )
    try:
        return filter_types()[table.type].configure(
            dict(table.options), context
        )
    except Invalid as invalid:
        raise Invalid(
            problems=[
                (path if not path or path.startswith((".", "[")) else "." + path, text)
                for path, text in invalid.problems
            ]
        )


def filter_problems(config, directory) -> Iterable[Problem]:
    """
    Check every filter table's options with its type, as L{configure_filter}
    does for a runtime, so that C{txrevproxy check} reports them.

    @param directory: the directory of the file that holds a key path
        (see L{txrevproxy.config.files.Directories}).
    """
    for table in config.filters.values():
        prefix = "filters" + key_path(table.name)
        try:
            configure_filter(
                table,
                None,
                config.server,
                directory(prefix),
                dict.fromkeys(config.redis),
            )
        except Invalid as invalid:
            for path, text in invalid.problems:
                yield (prefix + path, text)


filter_names = array_of(name, what='an array of filter names such as ["ratelimit"]')


def filter_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    Every name in a route's or a listener's C{filters} must be a
    C{[filters.NAME]} table; checked on the document as parsed.
    """
    known = data.get("filters", {})
    if not isinstance(known, dict):
        return
    places = []
    routes = data.get("routes")
    if isinstance(routes, list):
        places += [
            ("routes[%d]" % (index,), route) for index, route in enumerate(routes)
        ]
    listeners = data.get("listeners")
    if isinstance(listeners, dict):
        places += [
            ("listeners" + key_path(listener_name), listener)
            for listener_name, listener in listeners.items()
        ]
    for where, table in places:
        wanted = table.get("filters") if isinstance(table, dict) else None
        if not isinstance(wanted, list):
            continue
        for index, filter_name in enumerate(wanted):
            message = missing_reference(filter_name, known, "filter")
            if message:
                yield ("%s.filters[%d]" % (where, index), message)
