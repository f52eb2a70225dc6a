"""
The configuration model: frozen attrs classes that are the single source of
truth for a running proxy.

Instances are only ever built by L{txrevproxy.config.load} after validation,
so every value here is already checked and converted (durations are seconds
as floats, sizes are bytes as ints, CIDRs are L{ipaddress} networks).  The
runtime (routes, balancers, pools) is built from these objects, and a reload
builds a new runtime from a new L{Config}.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping, Optional, Tuple, Union

import attr

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@attr.s(frozen=True, auto_attribs=True)
class ServerSettings:
    """
    The C{[server]} table: process-wide settings.

    @ivar trusted_proxies: peers whose X-Forwarded-* headers are believed.
    @ivar max_request_body: largest request body in bytes; C{0} means no limit.
    @ivar keepalive_timeout: seconds an idle client connection is kept open.
    """

    trusted_proxies: Tuple[IPNetwork, ...] = ()
    max_request_body: int = 0
    keepalive_timeout: float = 75.0


@attr.s(frozen=True, auto_attribs=True)
class Listener:
    """
    One C{[listeners.NAME]} table: where the proxy accepts connections.

    @ivar endpoint: a Twisted server endpoint description such as
        C{"tcp:8080:interface=127.0.0.1"}.
    """

    name: str
    endpoint: str


@attr.s(frozen=True, auto_attribs=True)
class BackendServer:
    """
    One entry of C{upstreams.NAME.servers}: a backend origin.

    @ivar url: the URL as written in the config, kept for messages and status.
    @ivar scheme: C{"http"}.
    @ivar host: the host name or address, without brackets for IPv6.
    @ivar port: the TCP port (the scheme's default when the URL has none).
    """

    url: str
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        """
        The C{host[:port]} form used in a Host header sent to this backend,
        omitting the port when it is the scheme's default.
        """
        host = "[%s]" % (self.host,) if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else "%s:%d" % (host, self.port)


@attr.s(frozen=True, auto_attribs=True)
class Upstream:
    """
    One C{[upstreams.NAME]} table: a group of interchangeable backends.

    @ivar connect_timeout: seconds to establish a backend connection (502 after).
    @ivar response_timeout: seconds from the end of the request to the first
        byte of the response (504 after).
    @ivar idle_timeout: seconds an unused pooled backend connection is kept.
    @ivar max_idle_connections: idle pooled connections kept per backend.
    @ivar preserve_host: send the client's Host header (C{True}) or the
        backend's own authority (C{False}); a route may override it.
    @ivar tunnel_idle_timeout: seconds an upgraded (WebSocket) connection
        may stay silent in both directions before it is closed.
    """

    name: str
    servers: Tuple[BackendServer, ...]
    balance: str = "round_robin"
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    idle_timeout: float = 30.0
    max_idle_connections: int = 32
    preserve_host: bool = True
    tunnel_idle_timeout: float = 3600.0


@attr.s(frozen=True, auto_attribs=True)
class Route:
    """
    One C{[[routes]]} entry: which requests go to which upstream.

    @ivar index: position in the C{routes} array, for messages (C{routes[2]}).
    @ivar upstream: name of an upstream in L{Config.upstreams}.
    @ivar path: a path prefix, matched on whole segments; longest wins.
    @ivar hosts: lower-cased host names (C{"*.example.test"} allowed); empty
        means any host.
    @ivar preserve_host: overrides L{Upstream.preserve_host} when not None.
    """

    index: int
    upstream: str
    path: str = "/"
    hosts: Tuple[str, ...] = ()
    preserve_host: Optional[bool] = None


@attr.s(frozen=True, auto_attribs=True)
class Config:
    """
    A whole, validated configuration.

    @ivar source: the path it was read from, if any.
    """

    server: ServerSettings
    listeners: Mapping[str, Listener]
    upstreams: Mapping[str, Upstream]
    routes: Tuple[Route, ...]
    source: Optional[str] = None
