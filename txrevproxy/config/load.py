"""
Loading and validating the configuration file.

The schema below is the whole list of keys: one L{Field} per key, with its
converter and its default written as in the file.  L{parse_config} converts
a parsed TOML document against it, collecting every problem with its key
path, and raises one L{ConfigError} carrying all of them.
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional

from .model import BackendServer, Config, Listener, Route, ServerSettings, Upstream
from .schema import (
    MODEL_DEFAULT,
    Field,
    Invalid,
    Problem,
    Table,
    array_of,
    named_tables,
)
from .values import (
    backend_url,
    boolean,
    duration,
    endpoint,
    host_names,
    integer,
    name,
    networks,
    one_of,
    route_path,
    size,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - PyPy 3.9
    import tomli as tomllib


class ConfigError(Exception):
    """
    A configuration cannot be used.

    @ivar problems: every problem found, each one sentence starting with
        its key path (C{routes[0].upstream: no upstream named "api"}), or
        with the file name for a file that cannot be read or parsed.
    @ivar source: the file's path, if the configuration came from one.
    """

    def __init__(self, problems: Iterable[str], source: Optional[str] = None) -> None:
        self.problems: List[str] = list(problems)
        self.source = source
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


#: The balancing policies an upstream may name.
BALANCE_POLICIES = ("round_robin",)


def _distinct_servers(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The same backend twice in one upstream is a mistake (it would get twice
    the traffic).
    """
    seen: Dict[Any, int] = {}
    for index, server in enumerate(arguments["servers"]):
        first = seen.setdefault((server.host, server.port), index)
        if first != index:
            yield (
                ".servers[%d].url" % (index,),
                "same backend as servers[%d] (%s)" % (first, server.url),
            )


SERVER = Table(
    ServerSettings,
    {
        "trusted_proxies": Field(networks, default=[]),
        "max_request_body": Field(size, default="0"),
        "keepalive_timeout": Field(duration, default="75s"),
    },
)

LISTENER = Table(
    Listener,
    {
        "endpoint": Field(endpoint),
    },
)

BACKEND = Table(
    lambda url: BackendServer(*url),
    {
        "url": Field(backend_url),
    },
)

UPSTREAM = Table(
    Upstream,
    {
        "servers": Field(
            array_of(BACKEND, min_items=1, what="an array of tables with a url")
        ),
        "balance": Field(one_of(*BALANCE_POLICIES), default="round_robin"),
        "connect_timeout": Field(duration, default="5s"),
        "response_timeout": Field(duration, default="60s"),
        "idle_timeout": Field(duration, default="30s"),
        "max_idle_connections": Field(integer(minimum=0), default=32),
        "preserve_host": Field(boolean, default=True),
        "tunnel_idle_timeout": Field(duration, default="1h"),
    },
    checks=(_distinct_servers,),
)

ROUTE = Table(
    Route,
    {
        "upstream": Field(name),
        "path": Field(route_path, default="/"),
        "host": Field(host_names, default=MODEL_DEFAULT, attribute="hosts"),
        "preserve_host": Field(boolean, default=MODEL_DEFAULT),
    },
)

CONFIG = Table(
    Config,
    {
        "server": Field(SERVER, default={}),
        "listeners": Field(
            named_tables(LISTENER, min_items=1, example="[listeners.web]"),
            missing="at least one [listeners.NAME] table is required",
        ),
        "upstreams": Field(
            named_tables(UPSTREAM, min_items=1, example="[upstreams.app]"),
            missing="at least one [upstreams.NAME] table is required",
        ),
        "routes": Field(
            array_of(
                ROUTE, min_items=1, indexed=True, what="an array of [[routes]] tables"
            ),
            missing="at least one [[routes]] table is required",
        ),
    },
)


def _route_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    Every route's upstream must exist.  Checked on the document as parsed,
    so that a route naming a missing upstream is reported even when other
    keys of the route or of the upstreams have problems of their own.
    """
    upstreams = data.get("upstreams")
    routes = data.get("routes")
    if not isinstance(upstreams, dict) or not isinstance(routes, list):
        return
    for index, route in enumerate(routes):
        wanted = route.get("upstream") if isinstance(route, dict) else None
        if isinstance(wanted, str) and wanted and wanted not in upstreams:
            message = 'no upstream named "%s"' % (wanted,)
            close = difflib.get_close_matches(wanted, list(upstreams), n=1)
            if close:
                message += '; did you mean "%s"?' % (close[0],)
            yield ("routes[%d].upstream" % (index,), message)


def _route_conflicts(routes: Iterable[Route]) -> Iterable[Problem]:
    """
    Two routes for the same host and path: the later would silently hide
    the earlier.
    """
    seen: Dict[Any, int] = {}
    for route in routes:
        for host in route.hosts or (None,):
            first = seen.setdefault((host, route.path), route.index)
            if first != route.index:
                where = "" if host is None else ' for host "%s"' % (host,)
                yield (
                    "routes[%d].path" % (route.index,),
                    '"%s"%s is already routed by routes[%d]' % (route.path, where, first),
                )


def _render(problems: Iterable[Problem]) -> List[str]:
    return ["%s: %s" % (path.lstrip("."), message) for path, message in problems]


def parse_config(data: Mapping[str, Any], source: Optional[str] = None) -> Config:
    """
    Validate a parsed TOML document and build the L{Config}.

    @param data: the document, as C{tomllib.load} returns it.
    @param source: the file it came from, kept in L{Config.source}.
    @raise ConfigError: with every problem found.
    """
    problems: List[Problem] = []
    config = None
    try:
        config = CONFIG(dict(data), source=source)
    except Invalid as invalid:
        problems.extend(invalid.problems)
    problems.extend(_route_references(data))
    if config is not None:
        problems.extend(_route_conflicts(config.routes))
    if problems:
        raise ConfigError(_render(problems), source=source)
    return config


_TOML_POSITION = re.compile(r"(.*) \(at line (\d+), column (\d+)\)\Z", re.DOTALL)


def load_config(path: str) -> Config:
    """
    Read, parse and validate a configuration file.

    @raise ConfigError: when the file cannot be read, is not TOML, or does
        not validate; a file problem is one sentence naming the file (and
        the line and column of a TOML syntax error), never a traceback.
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(
            [
                "%s: cannot read the configuration file: %s"
                % (path, error.strerror or error)
            ],
            source=path,
        )
    except UnicodeDecodeError as error:
        raise ConfigError(
            ["%s: not UTF-8 text (byte %d)" % (path, error.start)], source=path
        )
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_POSITION.match(message)
        if match:
            message = "%s:%s:%s: invalid TOML: %s" % (
                path,
                match.group(2),
                match.group(3),
                match.group(1),
            )
        else:
            message = "%s: invalid TOML: %s" % (path, message)
        raise ConfigError([message], source=path)
    return parse_config(data, source=path)
