"""
Loading and validating the configuration file.

The schema below is the whole list of keys: one L{Field} per key, with its
converter and its default written as in the file.  L{parse_config} converts
a parsed TOML document against it, collecting every problem with its key
path, and raises one L{ConfigError} carrying all of them.
"""

from __future__ import annotations

import mimetypes
import os
import re
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional

import attr

from ..plugins import policy_names
from ..tls.files import FileProblem, collect, read_ca
from .caches import CACHE
from .filters import filter_names, filter_problems, filter_references, filter_table
from .model import (
    TLS,
    AdminSettings,
    BackendServer,
    Config,
    HealthCheck,
    Listener,
    LogSettings,
    OutlierDetection,
    Route,
    ServerSettings,
    Sticky,
    TLSCertificate,
    Upstream,
)
from .routes import ROUTE
from .schema import (
    MODEL_DEFAULT,
    Field,
    Invalid,
    Problem,
    Table,
    array_of,
    describe,
    key_path,
    missing_reference,
    named_tables,
)
from .values import (
    access_log,
    backend_url,
    boolean,
    cookie_name,
    duration,
    endpoint,
    file_path,
    hash_key,
    header_name,
    health_statuses,
    host_header,
    hsts_policy,
    integer,
    method_names,
    name,
    networks,
    one_of,
    percent,
    request_target,
    server_name,
    server_names,
    size,
    tls_version,
    token,
    worker_count,
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


def balance_policy(value: Any) -> str:
    """
    The name of a balancing policy: a built-in or an installed plugin's
    (looked up each time a configuration is loaded, so a plugin installed
    since the last load counts).
    """
    return one_of(*policy_names())(value)


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
        "max_request_line": Field(size, default="8KiB"),
        "max_headers": Field(integer(1), default=100),
        "max_header_size": Field(size, default="32KiB"),
        "header_timeout": Field(duration, default="10s"),
        "allowed_methods": Field(method_names, default=[]),
        "max_connections_per_ip": Field(integer(0), default=0),
        "max_requests_per_connection": Field(integer(0), default=1000),
        "body_timeout": Field(duration, default="60s"),
        "min_body_rate": Field(size, default="1KiB"),
        "workers": Field(worker_count, default=1),
        "shutdown_timeout": Field(duration, default="30s"),
    },
)

LOG = Table(
    LogSettings,
    {
        "access": Field(access_log, default="-"),
        "format": Field(one_of("combined", "json"), default="combined"),
    },
)

ADMIN = Table(
    AdminSettings,
    {
        "endpoint": Field(endpoint, default="tcp:9901:interface=127.0.0.1"),
        "token": Field(token, default=MODEL_DEFAULT),
    },
)

LISTENER = Table(
    Listener,
    {
        "endpoint": Field(endpoint),
        "tls": Field(name, default=MODEL_DEFAULT),
        "http2": Field(boolean, default=True),
        "redirect_to_https": Field(name, default=MODEL_DEFAULT),
        "hsts": Field(hsts_policy, default=MODEL_DEFAULT),
        "filters": Field(filter_names, default=MODEL_DEFAULT),
        "proxy_protocol": Field(boolean, default=False),
    },
)

TLS_CERTIFICATE = Table(
    TLSCertificate,
    {
        "names": Field(server_names, default=MODEL_DEFAULT),
        "cert": Field(file_path),
        "key": Field(file_path),
    },
)


def _some_certificate(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if not arguments.get("certificates") and "directory" not in arguments:
        yield (
            "",
            'no certificate: give certificates = [{ cert = "...", key = "..." }] '
            'or directory = "..."',
        )


def _client_auth_needs_a_ca(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The client certificate keys mean nothing without C{client_ca}.
    """
    if "client_ca" in arguments:
        return
    needless = [
        key
        for key in ("client_auth", "client_subject_header")
        if key in arguments and arguments[key] != "require"
    ]
    for key in needless:
        yield ("." + key, "needs client_ca, the CAs of the client certificates")


TLS_TABLE = Table(
    TLS,
    {
        "certificates": Field(
            array_of(TLS_CERTIFICATE, what="an array of tables with cert and key"),
            default=MODEL_DEFAULT,
        ),
        "directory": Field(file_path, default=MODEL_DEFAULT),
        "default": Field(server_name, default=MODEL_DEFAULT),
        "min_version": Field(tls_version, default="1.2"),
        "client_ca": Field(file_path, default=MODEL_DEFAULT),
        "client_auth": Field(one_of("require", "optional"), default="require"),
        "client_subject_header": Field(header_name, default=MODEL_DEFAULT),
    },
    checks=(_some_certificate, _client_auth_needs_a_ca),
)

#: The keys of an https backend's TLS, in an upstream and in each server.
BACKEND_TLS_KEYS = ("ca", "tls_server_name", "verify")


def _tls_keys_need_https(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["url"][1] != "https":
        for key in BACKEND_TLS_KEYS:
            if key in arguments:
                yield (
                    key_path(key),
                    "only meaningful for an https:// backend, got %s"
                    % (describe(arguments["url"][0]),),
                )


BACKEND = Table(
    lambda url, **tls: BackendServer(*url, **tls),
    {
        "url": Field(backend_url),
        "ca": Field(file_path, default=MODEL_DEFAULT),
        "tls_server_name": Field(server_name, default=MODEL_DEFAULT),
        "verify": Field(boolean, default=MODEL_DEFAULT),
        "weight": Field(integer(minimum=1, maximum=256), default=1),
        "max_connections": Field(integer(minimum=0), default=0),
        "drain": Field(boolean, default=False),
    },
    checks=(_tls_keys_need_https,),
)

STICKY = Table(
    Sticky,
    {
        "cookie": Field(cookie_name),
        "ttl": Field(duration, default=MODEL_DEFAULT),
    },
)

#: The keys of a health check that only an HTTP check has.
HTTP_CHECK_KEYS = ("path", "statuses", "host")


def _http_keys_need_http(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["type"] != "http":
        for key in HTTP_CHECK_KEYS:
            if key in arguments:
                yield (key_path(key), 'only meaningful with type = "http"')


HEALTH = Table(
    HealthCheck,
    {
        "type": Field(one_of("http", "tcp"), default="http"),
        "path": Field(request_target, default=MODEL_DEFAULT),
        "interval": Field(duration, default="5s"),
        "timeout": Field(duration, default="2s"),
        "rise": Field(integer(minimum=1), default=2),
        "fall": Field(integer(minimum=1), default=3),
        "statuses": Field(health_statuses, default=MODEL_DEFAULT),
        "host": Field(host_header, default=MODEL_DEFAULT),
    },
    checks=(_http_keys_need_http,),
)

def _ejection_times_in_order(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["max_ejection_time"] < arguments["ejection_time"]:
        yield (".max_ejection_time", "must not be shorter than ejection_time")


OUTLIER = Table(
    OutlierDetection,
    {
        "consecutive_failures": Field(integer(minimum=1), default=5),
        "count_5xx": Field(boolean, default=True),
        "ejection_time": Field(duration, default="30s"),
        "max_ejection_time": Field(duration, default="5m"),
        "max_ejection_percent": Field(percent, default=50),
    },
    checks=(_ejection_times_in_order,),
)


def _hash_key_needs_hash(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if "hash_key" in arguments and arguments["balance"] != "hash":
        yield (
            ".hash_key",
            'only meaningful with balance = "hash", got balance = %s'
            % (describe(arguments["balance"]),),
        )

UPSTREAM = Table(
    Upstream,
    {
        "servers": Field(
            array_of(BACKEND, min_items=1, what="an array of tables with a url")
        ),
        "balance": Field(balance_policy, default="round_robin"),
        "hash_key": Field(hash_key, default=MODEL_DEFAULT),
        "sticky": Field(STICKY, default=MODEL_DEFAULT),
        "slow_start": Field(duration, default=MODEL_DEFAULT),
        "queue_size": Field(integer(minimum=0), default=100),
        "queue_timeout": Field(duration, default="5s"),
        "retries": Field(integer(minimum=0), default=1),
        "retry_budget": Field(percent, default=20),
        "health": Field(HEALTH, default=MODEL_DEFAULT),
        "outlier": Field(OUTLIER, default=MODEL_DEFAULT),
        "connect_timeout": Field(duration, default="5s"),
        "response_timeout": Field(duration, default="60s"),
        "idle_timeout": Field(duration, default="30s"),
        "max_idle_connections": Field(integer(minimum=0), default=128),
        "preserve_host": Field(boolean, default=True),
        "tunnel_idle_timeout": Field(duration, default="1h"),
        "ca": Field(file_path, default=MODEL_DEFAULT),
        "tls_server_name": Field(server_name, default=MODEL_DEFAULT),
        "verify": Field(boolean, default=True),
    },
    checks=(_distinct_servers, _hash_key_needs_hash),
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
        "tls": Field(named_tables(TLS_TABLE, example="[tls.default]"), default={}),
        "filters": Field(
            named_tables(filter_table, example="[filters.ratelimit]"), default={}
        ),
        "caches": Field(named_tables(CACHE, example="[caches.pages]"), default={}),
        "log": Field(LOG, default=MODEL_DEFAULT),
        "admin": Field(ADMIN, default=MODEL_DEFAULT),
    },
)


def _route_references(
    data: Mapping[str, Any],
    key: str = "upstream",
    tables: str = "upstreams",
    absent: Any = None,
) -> Iterable[Problem]:
    """
    Every route's upstream (or other C{key} naming one of the C{tables})
    must exist.  Checked on the document as parsed, so that a route naming
    a missing upstream is reported even when other keys of the route or
    of the upstreams have problems of their own.

    @param absent: what stands for the tables when the document has none
        (L{None}: nothing is checked, another problem says they are
        missing).
    """
    named = data.get(tables, absent)
    routes = data.get("routes")
    if not isinstance(named, dict) or not isinstance(routes, list):
        return
    for index, route in enumerate(routes):
        wanted = route.get(key) if isinstance(route, dict) else None
        message = missing_reference(wanted, named, key)
        if message:
            yield ("routes[%d].%s" % (index, key), message)


def _listener_references(data: Mapping[str, Any]) -> Iterable[Problem]:
    """
    Every listener's C{tls} must name a C{[tls.NAME]} table, its
    C{redirect_to_https} a listener with tls, and only a listener with tls
    may have C{hsts}; checked on the document as parsed, like
    L{_route_references}.
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


def _has_tls(listener: Any) -> bool:
    return isinstance(listener, dict) and bool(listener.get("tls"))


def _file_problems(config: Config, base: str) -> Iterable[Problem]:
    """
    Read every certificate, key and CA file the configuration names, and
    report those that cannot be used (missing, unreadable, a key that does
    not match, expired), each with the file's name as written.
    """
    for block in config.tls.values():
        prefix = "tls" + key_path(block.name)
        for path, message in collect(block, base).problems:
            yield (prefix + path, message)
        if block.client_ca is not None:
            try:
                read_ca(block.client_ca, base)
            except FileProblem as problem:
                yield (prefix + ".client_ca", problem.message)
    for upstream in config.upstreams.values():
        prefix = "upstreams" + key_path(upstream.name)
        places = [(prefix + ".ca", upstream.ca)] + [
            ("%s.servers[%d].ca" % (prefix, index), server.ca)
            for index, server in enumerate(upstream.servers)
        ]
        for path, ca in places:
            if ca is not None:
                try:
                    read_ca(ca, base)
                except FileProblem as problem:
                    yield (path, problem.message)


def _absolute_paths(config: Config, base: str) -> Config:
    """
    The configuration with every file path absolute, taken from C{base}
    (the configuration file's directory), so that it means the same
    whatever the current directory is later.
    """

    def absolute(path: Optional[str]) -> Optional[str]:
        return None if path is None else os.path.abspath(os.path.join(base, path))

    tls = {
        block_name: attr.evolve(
            block,
            directory=absolute(block.directory),
            client_ca=absolute(block.client_ca),
            certificates=tuple(
                attr.evolve(spec, cert=absolute(spec.cert), key=absolute(spec.key))
                for spec in block.certificates
            ),
        )
        for block_name, block in config.tls.items()
    }
    upstreams = {
        upstream_name: attr.evolve(
            upstream,
            ca=absolute(upstream.ca),
            servers=tuple(
                attr.evolve(server, ca=absolute(server.ca))
                for server in upstream.servers
            ),
        )
        for upstream_name, upstream in config.upstreams.items()
    }
    filters = {
        filter_name: attr.evolve(table, directory=os.path.abspath(base))
        for filter_name, table in config.filters.items()
    }
    caches = {
        cache_name: attr.evolve(cache, path=absolute(cache.path))
        for cache_name, cache in config.caches.items()
    }
    log = config.log
    if log.access not in (None, "-"):
        log = attr.evolve(log, access=absolute(log.access))
    return attr.evolve(
        config, tls=tls, upstreams=upstreams, filters=filters, caches=caches, log=log
    )


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


#: The largest error page read; a page is held in memory for the life of
#: the configuration.
ERROR_PAGE_LIMIT = 1024 * 1024


def _read_error_pages(config: Config, base: str, problems: List[Problem]) -> Config:
    """
    The configuration with every route's error pages read (from absolute
    paths), so the hot path never reads a file; a page that cannot be read
    is added to C{problems}.
    """
    routes = []
    for route in config.routes:
        pages = []
        for page in route.error_pages:
            path = os.path.abspath(os.path.join(base, page.path))
            where = "routes[%d].error_pages.%d" % (route.index, page.status)
            try:
                with open(path, "rb") as file:
                    body = file.read(ERROR_PAGE_LIMIT + 1)
            except OSError as error:
                problems.append(
                    (where, "cannot read %s: %s" % (page.path, error.strerror or error))
                )
                continue
            if len(body) > ERROR_PAGE_LIMIT:
                problems.append(
                    (where, "%s is larger than 1 MiB; keep it small" % (page.path,))
                )
                continue
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            if content_type.startswith("text/"):
                content_type += "; charset=utf-8"
            pages.append(
                attr.evolve(page, path=path, body=body, content_type=content_type)
            )
        routes.append(attr.evolve(route, error_pages=tuple(pages)))
    return attr.evolve(config, routes=tuple(routes))


def _render(problems: Iterable[Problem]) -> List[str]:
    return ["%s: %s" % (path.lstrip("."), message) for path, message in problems]


def parse_config(data: Mapping[str, Any], source: Optional[str] = None) -> Config:
    """
    Validate a parsed TOML document and build the L{Config}.

    Certificate, key and CA files are read to be checked (C{txrevproxy
    check} finds an expired certificate); their relative paths are taken
    from the directory of C{source} (else the current directory), and are
    absolute in the returned configuration.

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
    problems.extend(_listener_references(data))
    problems.extend(filter_references(data))
    problems.extend(_route_references(data, "cache", "caches", absent={}))
    base = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    if config is not None:
        problems.extend(_route_conflicts(config.routes))
        problems.extend(_file_problems(config, base))
        problems.extend(filter_problems(config, base))
        config = _read_error_pages(config, base, problems)
    if problems:
        raise ConfigError(_render(problems), source=source)
    return _absolute_paths(config, base)


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
