"""
The C{[server]} table: settings every listener shares (trusted proxies,
limits on requests, timeouts, workers).
"""

from __future__ import annotations

from .model import ServerSettings
from .redis import LOCAL, store_reference
from .schema import Field, Table, array_of
from .values import (
    boolean,
    duration,
    integer,
    method_names,
    networks,
    one_of,
    resolver_address,
    server_header,
    size,
    worker_count,
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
        "allowed_methods": Field(method_names(), default=[]),
        "max_connections_per_ip": Field(integer(0), default=0),
        "max_connections_per_ip_store": Field(
            lambda value: store_reference(value, None), default=LOCAL
        ),
        "max_requests_per_connection": Field(integer(0), default=1000),
        "body_timeout": Field(duration, default="60s"),
        "min_body_rate": Field(size, default="1KiB"),
        "workers": Field(worker_count, default=1),
        "shutdown_timeout": Field(duration, default="30s"),
        "forwarded": Field(one_of("off", "add"), default="off"),
        "pass_backend_banners": Field(boolean, default=False),
        "server_header": Field(server_header, default=False),
        "body_without_semantics": Field(
            one_of("forward_and_close", "refuse"), default="forward_and_close"
        ),
        "underscores_in_headers": Field(one_of("forward", "drop"), default="forward"),
        "resolvers": Field(array_of(resolver_address), default=[]),
    },
)
