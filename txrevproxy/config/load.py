"""
Loading and validating the configuration file: the pipeline only.

Each table's schema is in a module of its own (L{txrevproxy.config.server},
L{txrevproxy.config.listeners}, L{txrevproxy.config.tls},
L{txrevproxy.config.upstreams}, L{txrevproxy.config.routes} ...): one
L{Field} per key, with its converter and its default written as in the
file.  L{CONFIG} puts them together as the document.  L{load_config}
reads the file and the files it includes into one document, with its
environment variables substituted (L{txrevproxy.config.document});
L{parse_config} converts a parsed TOML document against L{CONFIG}.  Both
convert every table on its own, then check what one table says of another
(references by name, route conflicts) and the files the configuration
names on every table that converted, collecting every problem with its key
path in one pass, and raise one L{ConfigError} carrying all of them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .admin import ADMIN
from .caches import CACHE
from .document import Document, Origins, Unreadable, read_document
from .files import absolute_paths, file_problems, read_error_pages
from .filters import filter_problems, filter_references, filter_table
from .listeners import LISTENER
from .log import LOG
from .model import Config, Route, ServerSettings
from .pages import route_name_problems
from .redis import REDIS, store_reference
from .routes import ROUTE
from .splits import split_references
from .schema import (
    MODEL_DEFAULT,
    Field,
    Invalid,
    Problem,
    Table,
    array_of,
    key_path,
    missing_reference,
    named_tables,
)
from .server import SERVER
from .tls import TLS_TABLE, acme_challenge_problems
from .tracing import TRACING
from .upstreams import UPSTREAM

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
        "tls": Field(named_tables(TLS_TABLE, example="[tls.default]"), default={}),
        "filters": Field(
            named_tables(filter_table, example="[filters.ratelimit]"), default={}
        ),
        "caches": Field(named_tables(CACHE, example="[caches.pages]"), default={}),
        "redis": Field(named_tables(REDIS, example="[redis.shared]"), default={}),
        "log": Field(LOG, default=MODEL_DEFAULT),
        "admin": Field(ADMIN, default=MODEL_DEFAULT),
        "tracing": Field(TRACING, default=MODEL_DEFAULT),
    },
)


def _route_references(
    data: Mapping[str, Any],
    key: str = "upstream",
    tables: str = "upstreams",
    absent: Any = None,
    what: Optional[str] = None,
) -> Iterable[Problem]:
    """
    Every route's upstream (or other C{key} naming one of the C{tables})
    must exist.  Checked on the document as parsed, so that a route naming
    a missing upstream is reported even when other keys of the route or
    of the upstreams have problems of their own.

    @param absent: what stands for the tables when the document has none
        (L{None}: nothing is checked, another problem says they are
        missing).
    @param what: what the message calls a table (default: C{key}).
    """
    named = data.get(tables, absent)
    routes = data.get("routes")
    if not isinstance(named, dict) or not isinstance(routes, list):
        return
    for index, route in enumerate(routes):
        wanted = route.get(key) if isinstance(route, dict) else None
        message = missing_reference(wanted, named, what or key)
        if message:
            yield ("routes[%d].%s" % (index, key), message)


def _listener_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    Every listener's C{tls} must name a C{[tls.NAME]} table, its
    C{redirect_to_https} a listener with tls, only a listener with tls
    may have C{hsts}, only one without may have C{h2c}, and only one with
    C{h2c} may have C{h2c_upgrade}; checked on the document as parsed,
    like L{_route_references}.
    """
    listeners = data.get("listeners")
    blocks = data.get("tls", {})
    if not isinstance(listeners, dict) or not isinstance(blocks, dict):
        return
    for listener_name, listener in listeners.items():
        if not isinstance(listener, dict):
            continue
        where = "listeners" + key_path(listener_name)
        message = missing_reference(listener.get("tls"), blocks, "tls block")
        if message:
            yield (where + ".tls", message)
        target = listener.get("redirect_to_https")
        message = missing_reference(target, listeners, "listener")
        if message:
            yield (where + ".redirect_to_https", message)
        elif isinstance(target, str) and target and not _has_tls(listeners[target]):
            yield (
                where + ".redirect_to_https",
                'listener "%s" has no tls: redirect to a listener with tls' % (target,),
            )
        if "hsts" in listener and not _has_tls(listener):
            yield (
                where + ".hsts",
                "only a listener with tls may send Strict-Transport-Security "
                "(browsers ignore it over plain HTTP, RFC 6797 section 7.2)",
            )
        if listener.get("h2c") is True and _has_tls(listener):
            yield (
                where + ".h2c",
                "h2c is HTTP/2 without TLS: a listener with tls offers HTTP/2 "
                "through ALPN (http2 = true)",
            )
        if listener.get("h2c_upgrade") is True and listener.get("h2c") is not True:
            yield (
                where + ".h2c_upgrade",
                "the upgrade to h2c needs h2c = true on the listener",
            )


def _store_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    C{[server] max_connections_per_ip_store}, and a cache's C{store} and
    C{broadcast}, must name a C{[redis.NAME]} table (a filter's C{store}
    is checked by its type).
    """
    tables = data.get("redis", {})
    if not isinstance(tables, dict):
        return
    references = []
    server = data.get("server")
    if isinstance(server, dict):
        references.append(
            ("server.max_connections_per_ip_store", server.get("max_connections_per_ip_store"))
        )
    caches = data.get("caches")
    if isinstance(caches, dict):
        for name, table in caches.items():
            if isinstance(table, dict):
                for key in ("store", "broadcast"):
                    references.append(("caches%s.%s" % (key_path(name), key), table.get(key)))
    for where, store in references:
        if isinstance(store, str) and store.startswith("redis:"):
            try:
                store_reference(store, tables)
            except Invalid as invalid:
                for _, text in invalid.problems:
                    yield (where, text)


def _has_tls(listener: Any) -> bool:
    return isinstance(listener, dict) and bool(listener.get("tls"))


def _route_conflicts(routes: Iterable[Route]) -> Iterable[Problem]:
    """
    Two routes for the same host and path with the same matchers: one of
    them could never be chosen (whatever their priorities, the same
    requests match both and one always comes first).
    """
    seen: Dict[Any, int] = {}
    for route in routes:
        for host in route.hosts or (None,):
            first = seen.setdefault((host, route.path, route.matchers), route.index)
            if first != route.index:
                where = "" if host is None else ' for host "%s"' % (host,)
                same = " with the same matchers" if any(route.matchers) else ""
                yield (
                    "routes[%d].path" % (route.index,),
                    '"%s"%s is already routed by routes[%d]%s'
                    % (route.path, where, first, same),
                )


#: What stands for a required table that has problems of its own, so that
#: the checks of the tables that converted still run.
_REQUIRED_TABLES = {
    "server": ServerSettings(),
    "listeners": {},
    "upstreams": {},
    "routes": (),
}


def _repeats(path: str, failed: Iterable[str]) -> bool:
    """
    Whether a problem at C{path} is about a value whose substitution
    failed (its own problem says all there is to say).
    """
    path = path.lstrip(".")
    return any(
        path == where or path.startswith((where + ".", where + "["))
        for where in (where.lstrip(".") for where in failed)
    )


def parse_config(data: Mapping[str, Any], source: Optional[str] = None) -> Config:
    """
    Validate a parsed TOML document and build the L{Config}.

    Certificate, key and CA files are read to be checked (C{txrevproxy
    check} finds an expired certificate); their relative paths are taken
    from the directory of C{source} (else the current directory), and are
    absolute in the returned configuration.

    @param data: the document, as C{tomllib.load} returns it (no includes,
        no variables: see L{load_config}).
    @param source: the file it came from, kept in L{Config.source}.
    @raise ConfigError: with every problem found.
    """
    return _validate(Document(dict(data), Origins(source)), source)


def _validate(document: Document, source: Optional[str]) -> Config:
    """
    Validate a document in one pass: every table is converted on its own,
    and what one table says of another, route conflicts and files are
    checked on every table that converted, so that one run reports every
    problem.

    @raise ConfigError: with every problem found, each naming the file it
        is in when that is an included file.
    """
    data = document.data
    arguments, problems = CONFIG.arguments(data, parts=True)
    config = Config(
        **{**_REQUIRED_TABLES, **arguments}, source=source, document=document
    )
    problems.extend(_route_references(data))
    problems.extend(_listener_references(data))
    problems.extend(filter_references(data))
    problems.extend(_store_references(data))
    problems.extend(_route_references(data, "cache", "caches", absent={}))
    problems.extend(_route_references(data, "mirror", what="upstream"))
    problems.extend(split_references(data))
    problems.extend(_route_conflicts(config.routes))
    problems.extend(acme_challenge_problems(config))
    problems.extend(route_name_problems(config.routes))
    directory = document.origins.directory
    problems.extend(file_problems(config, directory))
    problems.extend(filter_problems(config, directory))
    config = read_error_pages(config, directory, problems)
    sentences = document.sentences + [
        document.origins.render(path, message)
        for path, message in document.problems
        + [problem for problem in problems if not _repeats(problem[0], document.failed)]
    ]
    if sentences:
        raise ConfigError(sentences, source=source)
    return absolute_paths(config, directory)


def load_config(path: str, environ: Optional[Mapping[str, str]] = None) -> Config:
    """
    Read, parse and validate a configuration file and the files it
    includes, with the environment variables its values name.

    @param environ: the variables (default: this process's environment).
    @raise ConfigError: when a file cannot be read, is not TOML, or does
        not validate; a file problem is one sentence naming the file (and
        the line and column of a TOML syntax error), never a traceback.
    """
    return load_document(path, environ)[0]


def load_document(
    path: str, environ: Optional[Mapping[str, str]] = None
) -> Tuple[Config, Document]:
    """
    Like L{load_config}, and also the document the configuration was made
    from, for L{txrevproxy.config.dump}.
    """
    try:
        document = read_document(path, CONFIG, os.environ if environ is None else environ)
    except Unreadable as unreadable:
        raise ConfigError([str(unreadable)], source=path)
    return _validate(document, path), document


def model_of(data: Mapping[str, Any]) -> Config:
    """
    The model of the tables of a parsed document that convert, without
    checking references, conflicts or files: for comparing with a
    configuration whose files may be on another machine and whose secrets
    are redacted (a running proxy's, as its admin API writes it), where
    only what a reload can or cannot apply is asked of the model.
    """
    arguments, _ = CONFIG.arguments(data, parts=True)
    return Config(**{**_REQUIRED_TABLES, **arguments})
