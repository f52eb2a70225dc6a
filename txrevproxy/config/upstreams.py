"""
The C{[upstreams.NAME]} tables: a group of backend servers, how they
are balanced, their health checks, outlier detection and TLS.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from ..plugins import policy_names
from .model import BackendServer, HealthCheck, OutlierDetection, Sticky, Upstream
from .schema import (
    MODEL_DEFAULT,
    Field,
    Problem,
    Table,
    TableForms,
    array_of,
    describe,
    key_path,
)
from .values import (
    backend_url,
    boolean,
    cookie_name,
    dns_name,
    duration,
    file_path,
    hash_key,
    health_statuses,
    host_header,
    integer,
    one_of,
    percent,
    request_target,
    resolver_address,
    server_name,
)


def balance_policy(value: Any) -> str:
    """
    The name of a balancing policy: a built-in or an installed plugin's
    (looked up each time a configuration is loaded, so a plugin installed
    since the last load counts).
    """
    return one_of(*policy_names())(value)


def _entry_key(server: BackendServer) -> str:
    """
    The key that names a server entry: C{url}, C{dns} or C{srv}.
    """
    return server.lookup or "url"


def _distinct_servers(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The same backend twice in one upstream is a mistake (it would get twice
    the traffic); so is the same name looked up twice.
    """
    seen: Dict[Any, int] = {}
    for index, server in enumerate(arguments["servers"]):
        first = seen.setdefault((server.lookup, server.host, server.port), index)
        if first != index:
            yield (
                ".servers[%d].%s" % (index, _entry_key(server)),
                "same backend as servers[%d] (%s)" % (first, server.url),
            )


#: The keys of an https backend's TLS, in an upstream and in each server.
BACKEND_TLS_KEYS = ("ca", "tls_server_name", "verify")


def _tls_keys_need_https(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if "url" in arguments:
        scheme, shown = arguments["url"][1], arguments["url"][0]
    else:
        scheme = shown = arguments["scheme"]
    if scheme != "https":
        for key in BACKEND_TLS_KEYS:
            if key in arguments:
                yield (
                    key_path(key),
                    "only meaningful for an https:// backend, got %s" % (describe(shown),),
                )


#: The keys every kind of server entry has: its TLS, its limit, its drain.
_TLS_KEYS = {
    "ca": Field(file_path, default=MODEL_DEFAULT),
    "tls_server_name": Field(server_name, default=MODEL_DEFAULT),
    "verify": Field(boolean, default=MODEL_DEFAULT),
}
_LIMIT_KEYS = {
    "max_connections": Field(integer(minimum=0), default=0),
    "drain": Field(boolean, default=False),
}

#: The keys of the entries that do not take them from SRV records.
_WEIGHT = {"weight": Field(integer(minimum=1, maximum=256), default=1)}
_BACKUP = {"backup": Field(boolean, default=False)}

_SCHEME = {"scheme": Field(one_of("http", "https"), default="http")}


def _looked_up(kind: str, host: str, port: int, scheme: str, **keys: Any) -> BackendServer:
    """
    A C{dns} or C{srv} entry, with the URL its messages show.
    """
    url = "%s://%s" % (scheme, host) + (":%d" % (port,) if port else "")
    return BackendServer(url, scheme, host, port, lookup=kind, **keys)


URL_SERVER = Table(
    lambda url, **keys: BackendServer(*url, **keys),
    dict({"url": Field(backend_url)}, **_TLS_KEYS, **_WEIGHT, **_LIMIT_KEYS, **_BACKUP),
    checks=(_tls_keys_need_https,),
)

DNS_SERVER = Table(
    lambda dns, port, scheme, **keys: _looked_up("dns", dns, port, scheme, **keys),
    dict(
        {
            "dns": Field(dns_name),
            "port": Field(
                integer(minimum=1, maximum=65535),
                missing="required with dns (the A and AAAA records give no port)",
            ),
        },
        **_SCHEME,
        **_TLS_KEYS,
        **_WEIGHT,
        **_LIMIT_KEYS,
        **_BACKUP,
    ),
    checks=(_tls_keys_need_https,),
)

SRV_SERVER = Table(
    lambda srv, scheme, **keys: _looked_up("srv", srv, 0, scheme, **keys),
    dict({"srv": Field(dns_name)}, **_SCHEME, **_TLS_KEYS, **_LIMIT_KEYS),
    checks=(_tls_keys_need_https,),
)

#: One entry of C{servers}: exactly one of C{url} (a server of its own),
#: C{dns} (every address of a name's A and AAAA records) or C{srv} (the
#: targets of a name's SRV records).
SERVER_ENTRY = TableForms(
    {"url": URL_SERVER, "dns": DNS_SERVER, "srv": SRV_SERVER},
    missing="required key is missing (or dns, a name whose addresses are the "
    "servers, or srv, a name whose SRV records are)",
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


#: The scheme each upstream protocol needs its servers' URLs to have.
_PROTOCOL_SCHEMES = {"h2": "https", "h2c": "http"}


def _protocol_fits_servers(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    C{h2} is negotiated in the TLS handshake, so it needs C{https://}
    servers; C{h2c} is HTTP/2 without TLS, so it needs C{http://} ones.
    """
    scheme = _PROTOCOL_SCHEMES.get(arguments["protocol"])
    if scheme is None:
        return
    for index, server in enumerate(arguments["servers"]):
        if server.scheme != scheme:
            yield (
                ".servers[%d].%s" % (index, "scheme" if server.lookup else "url"),
                'protocol = "%s" needs %s:// servers, got %s'
                % (arguments["protocol"], scheme, describe(server.url)),
            )


def _proxy_header_needs_http1(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    A PROXY protocol header names one client, and an HTTP/2 connection
    carries the streams of many: the two do not go together.
    """
    if arguments.get("proxy_protocol") is not None and arguments["protocol"] != "http/1.1":
        yield (
            ".proxy_protocol",
            'not with protocol = "%s": a PROXY header names one client, and '
            "an HTTP/2 connection carries the requests of many" % (arguments["protocol"],),
        )


def _dns_ttls_in_order(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["dns_max_ttl"] < arguments["dns_min_ttl"]:
        yield (".dns_max_ttl", "must not be shorter than dns_min_ttl")


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
            array_of(SERVER_ENTRY, min_items=1, what="an array of tables with a url")
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
        "max_idle_connections": Field(integer(minimum=0), default=1024),
        "preserve_host": Field(boolean, default=True),
        "tunnel_idle_timeout": Field(duration, default="1h"),
        "ca": Field(file_path, default=MODEL_DEFAULT),
        "tls_server_name": Field(server_name, default=MODEL_DEFAULT),
        "verify": Field(boolean, default=True),
        "read_timeout": Field(duration, default="60s"),
        "send_timeout": Field(duration, default="60s"),
        "total_timeout": Field(duration, default=MODEL_DEFAULT),
        "proxy_protocol": Field(one_of("v1", "v2"), default=MODEL_DEFAULT),
        "protocol": Field(one_of("http/1.1", "h2", "h2c"), default="http/1.1"),
        "max_streams": Field(integer(minimum=1, maximum=2**31 - 1), default=100),
        "resolvers": Field(array_of(resolver_address), default=MODEL_DEFAULT),
        "dns_min_ttl": Field(duration, default="5s"),
        "dns_max_ttl": Field(duration, default="5m"),
    },
    checks=(
        _distinct_servers,
        _dns_ttls_in_order,
        _hash_key_needs_hash,
        _protocol_fits_servers,
        _proxy_header_needs_http1,
    ),
)
