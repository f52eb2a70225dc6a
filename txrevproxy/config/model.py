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
from typing import Any, Mapping, Optional, Pattern, Tuple, Union

import attr

from .variables import Template

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@attr.s(frozen=True, auto_attribs=True)
class ServerSettings:
    """
    The C{[server]} table: process-wide settings.

    @ivar trusted_proxies: peers whose X-Forwarded-* headers are believed.
    @ivar max_request_body: largest request body in bytes; C{0} means no limit.
    @ivar keepalive_timeout: seconds an idle client connection is kept open.
    @ivar max_request_line: longest request line in bytes (else 414).
    @ivar max_headers: most header fields in a request head (else 431).
    @ivar max_header_size: largest request head in bytes, request line
        included (else 431).
    @ivar header_timeout: seconds a client may take to send a whole request
        head once it started (else 408).
    @ivar allowed_methods: the request methods served; empty: any.
    @ivar max_connections_per_ip: open connections one client address may
        have (else 429 and close); C{0}: no limit.
    @ivar max_connections_per_ip_store: the C{[redis.NAME]} table the
        connections of each address are counted in across processes and
        instances, or L{None}: each process counts its own.
    @ivar max_requests_per_connection: requests served on one keep-alive
        connection before it is closed; C{0}: no limit.
    @ivar body_timeout: the window, in seconds, over which a request body's
        rate is measured; C{0}: not measured.
    @ivar min_body_rate: bytes per second a request body must average over
        each C{body_timeout} window (else 408).
    @ivar workers: processes serving the listeners; C{1} serves in the
        twistd process itself, more run that many worker processes that
        share the parent's listening sockets (C{"auto"} in the file: one
        per core).
    @ivar shutdown_timeout: seconds a graceful shutdown waits for requests
        in flight before it closes the connections that still carry one.
    @ivar forwarded: C{"add"}: append this hop's element to the Forwarded
        header (RFC 7239) sent to backends; C{"off"}: add none, pass a
        trusted proxy's unchanged.  An untrusted peer's is dropped either
        way.
    @ivar pass_backend_banners: pass on the backends' Server, X-Powered-By
        and other stack banners (see
        L{txrevproxy.http.headers.BACKEND_BANNERS}); a route may say
        otherwise.
    @ivar server_header: the Server value the proxy sends on its own
        answers and on responses without the backend's; L{None}
        (C{false} or C{""} in the file): none.
    @ivar body_without_semantics: what becomes of a body on a GET, HEAD,
        OPTIONS or DELETE request: C{"forward_and_close"} forwards it and
        closes the client connection after the answer, C{"refuse"}
        answers 400 (a TRACE with a body is refused either way).
    @ivar underscores_in_headers: what becomes of a request field whose
        name contains C{_} (and is not refused as one a backend could read
        as a framing field): C{"forward"} or C{"drop"}.
    @ivar resolvers: the DNS servers the upstreams' C{dns} and C{srv}
        entries are looked up with, each C{(address, port)}; empty: the
        system's (C{/etc/resolv.conf}).
    """

    trusted_proxies: Tuple[IPNetwork, ...] = ()
    max_request_body: int = 0
    keepalive_timeout: float = 75.0
    max_request_line: int = 8192
    max_headers: int = 100
    max_header_size: int = 32768
    header_timeout: float = 10.0
    allowed_methods: Tuple[str, ...] = ()
    max_connections_per_ip: int = 0
    max_connections_per_ip_store: Optional[str] = None
    max_requests_per_connection: int = 1000
    body_timeout: float = 60.0
    min_body_rate: int = 1024
    workers: int = 1
    shutdown_timeout: float = 30.0
    forwarded: str = "off"
    pass_backend_banners: bool = False
    server_header: Optional[str] = None
    body_without_semantics: str = "forward_and_close"
    underscores_in_headers: str = "forward"
    resolvers: Tuple[Tuple[str, int], ...] = ()


@attr.s(frozen=True, auto_attribs=True)
class LogSettings:
    """
    The C{[log]} table: the access log, and the format of the event log
    (everything else the proxy says goes through C{twisted.logger}, where
    twistd sends it).

    @ivar access: C{"-"} for standard output, or a file path (absolute
        once loaded); L{None} (C{"off"} in the file): no access log.
    @ivar format: C{"combined"} (the Apache and nginx format) or
        C{"json"} (one object per line).
    @ivar events: the event log's lines, C{"text"} (twistd's) or
        C{"json"} (see L{txrevproxy.observe.eventlog}); unless set, JSON
        when C{format} is, so that one key makes every line JSON.
    """

    access: Optional[str] = None
    format: str = "combined"
    events: str = attr.Factory(
        lambda self: "json" if self.format == "json" else "text", takes_self=True
    )


@attr.s(frozen=True, auto_attribs=True)
class AdminSettings:
    """
    The C{[admin]} table: the admin API (status, metrics, reload, drain).

    @ivar endpoint: where it listens, a server endpoint description.
    @ivar token: when set, every request must carry C{Authorization:
        Bearer TOKEN}.
    """

    endpoint: str = "tcp:9901:interface=127.0.0.1"
    token: Optional[str] = None


@attr.s(frozen=True, auto_attribs=True)
class TracingSettings:
    """
    The C{[tracing]} table: OpenTelemetry traces, exported over OTLP/HTTP
    (see L{txrevproxy.observe.tracing}).

    @ivar endpoint: the collector's OTLP/HTTP traces URL.
    @ivar service_name: the C{service.name} of every span.
    @ivar sample_ratio: the share of requests without a sampled parent
        that are recorded (a believed parent's decision is followed).
    @ivar trust_incoming: whose C{traceparent} is believed:
        C{"trusted_proxies"} (the peers of C{[server] trusted_proxies}),
        C{"always"} or C{"never"}.
    @ivar headers: fields the exporter sends with each export (an
        authorization), as C{(name, value)} pairs.
    @ivar timeout: seconds an export may take.
    @ivar batch_delay: seconds between two exports.
    @ivar batch_size: the most spans one export carries.
    @ivar queue_size: the most spans waiting for export; more are dropped.
    """

    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "txrevproxy"
    sample_ratio: float = 0.1
    trust_incoming: str = "trusted_proxies"
    headers: Tuple[Tuple[str, str], ...] = ()
    timeout: float = 10.0
    batch_delay: float = 5.0
    batch_size: int = 512
    queue_size: int = 2048


@attr.s(frozen=True, auto_attribs=True)
class Listener:
    """
    One C{[listeners.NAME]} table: where the proxy accepts connections.

    @ivar endpoint: a Twisted server endpoint description such as
        C{"tcp:8080:interface=127.0.0.1"}.
    @ivar tls: the name of a L{TLS} table in L{Config.tls}: the listener
        terminates TLS with its certificates; L{None} for plain HTTP.
    @ivar http2: offer C{h2} through ALPN (only with C{tls}).
    @ivar h2c: also accept cleartext HTTP/2 with prior knowledge (only
        without C{tls}): a connection that opens with the HTTP/2 preface
        is HTTP/2, any other HTTP/1.1.
    @ivar h2c_upgrade: with C{h2c}, also upgrade to HTTP/2 the first
        request of a connection that asks with C{Upgrade: h2c}.
    @ivar redirect_to_https: the name of a listener with C{tls}: every
        request is answered with a 308 to the same host and target on that
        listener's port instead of being routed.
    @ivar hsts: the Strict-Transport-Security value added to every response
        of a listener with C{tls}, such as C{"max-age=31536000"}.
    @ivar filters: names of L{FilterConfig}s run on every request of this
        listener, before routing.
    @ivar proxy_protocol: every connection starts with a PROXY protocol
        (v1 or v2) header naming the real client.
    @ivar error_pages: pages replacing the proxy's own answers of those
        statuses on this listener (a route's own page of a status wins).
    """

    name: str
    endpoint: str
    tls: Optional[str] = None
    http2: bool = True
    h2c: bool = False
    h2c_upgrade: bool = False
    redirect_to_https: Optional[str] = None
    hsts: Optional[str] = None
    filters: Tuple[str, ...] = ()
    proxy_protocol: bool = False
    error_pages: Tuple["ErrorPage", ...] = ()


@attr.s(frozen=True, auto_attribs=True)
class TLSCertificate:
    """
    One entry of C{tls.NAME.certificates}.

    @ivar names: the SNI names it serves, lower-case, C{*.example.test}
        for a wildcard; empty means the certificate's own DNS names.
    @ivar cert: path of the PEM chain, leaf first (absolute once loaded).
    @ivar key: path of the PEM private key.
    @ivar ocsp: path of a DER OCSP response for the certificate, stapled
        to handshakes that ask for one; L{None}: nothing is stapled.
    @ivar ocsp_responder: the URL OCSP responses are fetched from, instead
        of the one the certificate names.
    @ivar ocsp_fetch: fetch the certificate's OCSP responses from its
        responder and staple them, refreshed; true whenever
        C{ocsp_responder} is given.
    """

    cert: str
    key: str
    names: Tuple[str, ...] = ()
    ocsp: Optional[str] = None
    ocsp_responder: Optional[str] = None
    ocsp_fetch: bool = attr.Factory(
        lambda self: self.ocsp_responder is not None, takes_self=True
    )


@attr.s(frozen=True, auto_attribs=True)
class ACME:
    """
    The C{acme} key of a C{[tls.NAME]} table: one certificate for
    C{names}, obtained and renewed from an ACME (RFC 8555) CA.

    @ivar email: the account's contact address.
    @ivar directory: the CA's directory URL.
    @ivar names: the DNS names of the certificate (the first names its
        files); empty in the file means the names of the table's
        C{certificates}, which the loader fills in.
    @ivar storage: the directory of the account key, the certificates and
        the pending challenges (absolute once loaded).
    @ivar challenge: C{"http-01"} or C{"tls-alpn-01"}; L{None}: HTTP-01
        when a listener without TLS exists, else TLS-ALPN-01.
    @ivar ca_bundle: a PEM file of the CAs that sign the directory's HTTPS
        certificate (a test CA such as Pebble's); L{None}: the system's.
    @ivar renew_before: renew this many seconds before the certificate
        expires; L{None}: once two thirds of its lifetime have passed.
    """

    email: str
    directory: str
    names: Tuple[str, ...] = ()
    storage: str = "acme"
    challenge: Optional[str] = None
    ca_bundle: Optional[str] = None
    renew_before: Optional[float] = None


@attr.s(frozen=True, auto_attribs=True)
class TLS:
    """
    One C{[tls.NAME]} table: the certificates a TLS listener serves.

    @ivar certificates: certificates listed one by one.
    @ivar directory: a directory whose certificate and key pairs are all
        served, each for its subjectAltName DNS names.
    @ivar default: the name whose certificate is served to a client that
        sends no SNI name or an unknown one; L{None}: the first
        certificate.
    @ivar min_version: the lowest TLS version accepted (C{"1.0"} to
        C{"1.3"}); L{None}: the preset's.
    @ivar client_ca: a PEM file of the CAs whose client certificates are
        accepted (mutual TLS); L{None}: clients are not asked for one.
    @ivar client_auth: with C{client_ca}, C{"require"} (no valid client
        certificate, no connection) or C{"optional"} (a client may send
        none; one it sends must be valid).
    @ivar client_subject_header: with C{client_ca}, the request header that
        carries the verified client certificate's subject (RFC 4514) to
        the backend; a client's own header of that name is always dropped.
    @ivar preset: the Mozilla profile of the TLS policy, C{"intermediate"},
        C{"modern"} or C{"old"} (see L{txrevproxy.tls.policy}).
    @ivar ciphers: an OpenSSL cipher string for TLS 1.2 and older;
        L{None}: the preset's.
    @ivar curves: the key exchange groups offered, preferred first.
    @ivar watch: how often, in seconds, the certificate, key and OCSP
        files are checked for changes (and read again when they changed);
        L{None}: only on reload.
    @ivar acme: certificates obtained from an ACME CA; L{None}: none.
    """

    name: str
    certificates: Tuple[TLSCertificate, ...] = ()
    directory: Optional[str] = None
    default: Optional[str] = None
    min_version: Optional[str] = None
    client_ca: Optional[str] = None
    client_auth: str = "require"
    client_subject_header: Optional[str] = None
    preset: str = "intermediate"
    ciphers: Optional[str] = None
    curves: Tuple[str, ...] = ("X25519", "prime256v1", "secp384r1")
    watch: Optional[float] = 30.0
    acme: Optional[ACME] = None


@attr.s(frozen=True, auto_attribs=True)
class BackendServer:
    """
    One entry of C{upstreams.NAME.servers}: a backend origin.

    @ivar url: the URL as written in the config, kept for messages and status.
    @ivar scheme: C{"http"} or C{"https"}.
    @ivar host: the host name or address, without brackets for IPv6.
    @ivar port: the TCP port (the scheme's default when the URL has none).
    @ivar ca: for C{https}, a PEM file of the CAs to trust; L{None}: as
        the upstream says.
    @ivar tls_server_name: for C{https}, the name sent as SNI and checked
        in the certificate; L{None}: as the upstream says.
    @ivar verify: for C{https}, whether the certificate is checked;
        L{None}: as the upstream says.
    @ivar weight: its share of requests relative to the other servers,
        for the policies that weigh.
    @ivar max_connections: the most exchanges it carries at once; C{0}
        means no limit.  Requests beyond wait in the upstream's queue.
    @ivar drain: take no new requests (in-flight ones finish).
    @ivar backup: take requests only while no other server of the
        upstream can (every one is down, ejected or draining).
    @ivar lookup: C{"dns"} or C{"srv"} for an entry whose servers are
        found in the DNS at run time (C{host} is then the name looked up,
        and for C{"srv"}, C{port} is C{0}: the records give the ports);
        L{None} for a server of its own (a C{url}).
    @ivar resolved_from: for a server found in the DNS, the name its
        address was found under (the C{dns} name, or an SRV record's
        target): its authority and TLS server name use it, since the
        address alone names no site.
    """

    url: str
    scheme: str
    host: str
    port: int
    ca: Optional[str] = None
    tls_server_name: Optional[str] = None
    verify: Optional[bool] = None
    weight: int = 1
    max_connections: int = 0
    drain: bool = False
    backup: bool = False
    lookup: Optional[str] = None
    resolved_from: Optional[str] = None

    @property
    def authority(self) -> str:
        """
        The C{host[:port]} form used in a Host header sent to this backend,
        omitting the port when it is the scheme's default; for a server
        found in the DNS, the name it was found under.
        """
        host = self.resolved_from or self.host
        host = "[%s]" % (host,) if ":" in host else host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else "%s:%d" % (host, self.port)


@attr.s(frozen=True, auto_attribs=True)
class BackendTLS:
    """
    How the proxy speaks TLS to one C{https} backend, with the upstream's
    settings and the server's own merged (see L{Upstream.backend_tls}).

    @ivar server_name: sent as SNI and checked against the certificate.
    @ivar ca: a PEM file of the CAs to trust; L{None}: the system's.
    @ivar verify: check the certificate (C{False} only encrypts).
    """

    server_name: str
    ca: Optional[str] = None
    verify: bool = True


@attr.s(frozen=True, auto_attribs=True)
class Sticky:
    """
    An upstream's C{sticky} table: sticky sessions by cookie.

    @ivar cookie: the cookie's name.
    @ivar ttl: its Max-Age in seconds; L{None}: a session cookie.
    """

    cookie: str
    ttl: Optional[float] = None


@attr.s(frozen=True, auto_attribs=True)
class HealthCheck:
    """
    An C{[upstreams.NAME.health]} table: active health checks.

    @ivar type: C{"http"} (a GET of L{path}) or C{"tcp"} (a connection).
    @ivar path: the request target of an HTTP check.
    @ivar interval: seconds from the end of one round of checks to the
        start of the next.
    @ivar timeout: seconds a check may take before it counts as failed.
    @ivar rise: consecutive passed checks that bring a backend back.
    @ivar fall: consecutive failed checks that take it out.
    @ivar statuses: the statuses that pass an HTTP check: classes such as
        C{"2xx"} and single codes such as C{"404"}.
    @ivar host: the Host header of an HTTP check; L{None}: the backend's
        own C{host[:port]}.
    """

    type: str = "http"
    path: str = "/"
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 3
    statuses: Tuple[str, ...] = ("2xx", "3xx")
    host: Optional[str] = None

    def passes(self, status: int) -> bool:
        """
        Whether an HTTP check answered with C{status} passes.
        """
        statuses = self.statuses
        return "%dxx" % (status // 100,) in statuses or str(status) in statuses


@attr.s(frozen=True, auto_attribs=True)
class OutlierDetection:
    """
    An C{[upstreams.NAME.outlier]} table: passive health checks, which take
    out of rotation a backend that fails requests.

    @ivar consecutive_failures: failures in a row that eject a backend.
    @ivar count_5xx: whether a 5xx response counts as a failure (besides
        connection failures, resets and timeouts).
    @ivar ejection_time: seconds of the first ejection; each ejection soon
        after the previous one lasts twice as long.
    @ivar max_ejection_time: the longest an ejection lasts.
    @ivar max_ejection_percent: the largest share of the upstream's
        backends ejected at once.
    """

    consecutive_failures: int = 5
    count_5xx: bool = True
    ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 50


@attr.s(frozen=True, auto_attribs=True)
class Upstream:
    """
    One C{[upstreams.NAME]} table: a group of interchangeable backends.

    @ivar connect_timeout: seconds to establish a backend connection (502 after).
    @ivar response_timeout: seconds from the end of the request to the first
        byte of the response (504 after).
    @ivar idle_timeout: seconds an unused pooled backend connection is kept.
    @ivar read_timeout: seconds between two reads of a response once it
        started (504 before its head, a reset client connection after).
    @ivar send_timeout: seconds a client may leave the response paused
        (not reading it) before its connection is reset.
    @ivar total_timeout: seconds from a request's dispatch to the end of
        its response, or L{None}: no limit.
    @ivar max_idle_connections: idle pooled connections kept per backend.
    @ivar preserve_host: send the client's Host header (C{True}) or the
        backend's own authority (C{False}); a route may override it.
    @ivar tunnel_idle_timeout: seconds an upgraded (WebSocket) connection
        may stay silent in both directions before it is closed.
    @ivar ca: for C{https} servers, a PEM file of the CAs to trust;
        L{None}: the system's trusted CAs.
    @ivar tls_server_name: for C{https} servers, the name sent as SNI and
        checked in the certificate; L{None}: each URL's host.
    @ivar verify: for C{https} servers, whether certificates are checked.
    @ivar balance: the name of the balancing policy (an
        L{txrevproxy.interfaces.IBalancingPolicy} plugin).
    @ivar hash_key: what the C{hash} policy hashes: C{"client_ip"},
        C{"path"}, C{"header:NAME"} or C{"cookie:NAME"}.
    @ivar sticky: sticky sessions by cookie, or L{None}.
    @ivar slow_start: seconds over which a returning backend's weight
        ramps up to its full value; C{0} means at once.
    @ivar queue_size: requests that may wait for a backend below its
        C{max_connections}; beyond, they are answered 503 at once.
    @ivar queue_timeout: seconds a request waits in that queue before it
        is answered 503.
    @ivar retries: how many other backends a failed request may be tried on.
    @ivar retry_budget: retries in progress allowed, as a percentage of the
        requests in progress (at least L{txrevproxy.upstream.balancer.MIN_RETRIES}).
    @ivar health: active health checks, or L{None}.
    @ivar outlier: passive health checks (outlier detection), or L{None}.
    @ivar proxy_protocol: C{"v1"} or C{"v2"}: every connection to a
        backend starts with a PROXY protocol header of that version naming
        the client; L{None}: no header.
    @ivar protocol: how the proxy speaks to the servers: C{"http/1.1"},
        C{"h2"} (HTTP/2 over TLS, chosen by ALPN: C{https} servers) or
        C{"h2c"} (HTTP/2 in cleartext with prior knowledge: C{http}
        servers).
    @ivar max_streams: with HTTP/2, the requests one connection carries at
        once; more open another connection.
    @ivar resolvers: the DNS servers its C{dns} and C{srv} entries are
        looked up with, each C{(address, port)}; L{None}: as C{[server]}
        says.
    @ivar dns_min_ttl: the shortest time, in seconds, a DNS answer is
        kept before it is looked up again, whatever its TTL says.
    @ivar dns_max_ttl: the longest; also how long the last answer is kept
        when the name stops existing (see docs/balancing.rst).
    """

    name: str
    servers: Tuple[BackendServer, ...]
    balance: str = "round_robin"
    hash_key: str = "client_ip"
    sticky: Optional[Sticky] = None
    slow_start: float = 0.0
    queue_size: int = 100
    queue_timeout: float = 5.0
    retries: int = 1
    retry_budget: int = 20
    health: Optional[HealthCheck] = None
    outlier: Optional[OutlierDetection] = None
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    idle_timeout: float = 30.0
    max_idle_connections: int = 1024
    preserve_host: bool = True
    tunnel_idle_timeout: float = 3600.0
    ca: Optional[str] = None
    tls_server_name: Optional[str] = None
    verify: bool = True
    read_timeout: float = 60.0
    send_timeout: float = 60.0
    total_timeout: Optional[float] = None
    proxy_protocol: Optional[str] = None
    protocol: str = "http/1.1"
    max_streams: int = 100
    resolvers: Optional[Tuple[Tuple[str, int], ...]] = None
    dns_min_ttl: float = 5.0
    dns_max_ttl: float = 300.0

    @property
    def lookups(self) -> Tuple[BackendServer, ...]:
        """
        Its C{dns} and C{srv} entries, whose servers are found at run time.
        """
        return tuple(server for server in self.servers if server.lookup is not None)

    def backend_tls(self, server: BackendServer) -> BackendTLS:
        """
        The TLS settings of one of this upstream's servers: the server's
        own keys where it sets them, else the upstream's.
        """
        return BackendTLS(
            server_name=server.tls_server_name
            or self.tls_server_name
            or server.resolved_from
            or server.host,
            ca=server.ca if server.ca is not None else self.ca,
            verify=self.verify if server.verify is None else server.verify,
        )


@attr.s(frozen=True, auto_attribs=True)
class ValueMatch:
    """
    What a request header or query parameter must hold for a route to
    match (see L{Route.headers}).

    @ivar kind: C{"exact"} (a value equal to C{value}), C{"regex"} (a value
        in which C{pattern} is found), C{"present"} (any value) or
        C{"absent"} (none at all).
    @ivar value: the exact value, for C{"exact"}.
    @ivar pattern: the compiled expression, for C{"regex"}.
    """

    kind: str
    value: Optional[str] = None
    pattern: Optional[Pattern[str]] = None


@attr.s(frozen=True, auto_attribs=True)
class MatcherConfig:
    """
    One matcher of a route: the name of an installed
    L{txrevproxy.interfaces.IMatcherType}, and the settings its
    C{configure} made of what the route says.

    Compared by both, hashed by the type alone, so that settings need not
    be hashable to tell two routes apart (see L{Route.matchers}).

    @ivar type: the matcher type's name (C{"methods"}, C{"cookie"}).
    @ivar settings: what its C{configure} returned.
    """

    type: str
    settings: Any = attr.ib(hash=False)


@attr.s(frozen=True, auto_attribs=True)
class PathRegex:
    """
    A route's C{rewrite}: the first match of C{pattern} in the path is
    replaced.

    @ivar pattern: the compiled expression.
    @ivar replacement: the replacement as written (C{$1}, C{${name}}).
    @ivar expansion: the same in the form of L{re.Pattern.sub}.
    """

    pattern: Pattern[bytes]
    replacement: str
    expansion: bytes


@attr.s(frozen=True, auto_attribs=True)
class HeaderRules:
    """
    A route's C{request_headers} or C{response_headers}: headers removed,
    then set (replacing every field of the name), then added.

    @ivar set: C{(name, template)} pairs.
    @ivar add: C{(name, template)} pairs.
    @ivar remove: header names.
    """

    set: Tuple[Tuple[str, Template], ...] = ()
    add: Tuple[Tuple[str, Template], ...] = ()
    remove: Tuple[str, ...] = ()


@attr.s(frozen=True, auto_attribs=True)
class RedirectRule:
    """
    One explicit rule of a route's C{redirect_rewrite}: a C{Location},
    C{Content-Location} or C{Refresh} URL that starts with L{source} has
    that start replaced by L{to} (nginx's C{proxy_redirect REDIRECT
    REPLACEMENT}).

    @ivar source: the C{from} of the rule, an absolute URL or a path.
    @ivar to: what replaces it.
    """

    source: str
    to: str


@attr.s(frozen=True, auto_attribs=True)
class RedirectRewrite:
    """
    A route's C{redirect_rewrite} as written: C{false} (no rewriting),
    C{true} (the default rules even where they would not apply), or an
    array of L{RedirectRule}s that may hold C{"default"}.

    @ivar default: whether the default rules apply (after L{rules}).
    @ivar rules: the explicit rules, first match wins.
    """

    default: bool
    rules: Tuple[RedirectRule, ...] = ()


@attr.s(frozen=True, auto_attribs=True)
class Redirect:
    """
    A route's C{redirect}: every request it matches is answered with a
    redirect instead of being forwarded.

    @ivar to: the Location, a template.
    @ivar status: 301, 302, 303, 307 or 308.
    """

    to: Template
    status: int = 302


@attr.s(frozen=True, auto_attribs=True)
class Respond:
    """
    A route's C{respond}: every request it matches gets this fixed answer.
    """

    status: int = 200
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


@attr.s(frozen=True, auto_attribs=True)
class ErrorPage:
    """
    One entry of a route's or a listener's C{error_pages}: the page sent
    instead of the proxy's own answer of C{status}.

    @ivar path: the file, as written (absolute once loaded).
    @ivar body: the file's bytes, read when the configuration is loaded.
    @ivar content_type: guessed from the file's extension.
    """

    status: int
    path: str
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"


@attr.s(frozen=True, auto_attribs=True)
class SplitSide:
    """
    One side of a route's split (an entry of its C{upstreams}).

    @ivar name: the upstream's name.
    @ivar weight: its share of the requests that neither a cookie nor an
        override sends to a side, against the other sides' weights.
    """

    name: str
    weight: int


@attr.s(frozen=True, auto_attribs=True)
class SplitOverride:
    """
    A route's C{split_override}: a request field or cookie whose value,
    when it names a side of the split, sends the request there.

    @ivar header: the field's name, or L{None}.
    @ivar cookie: the cookie's name, or L{None}.
    """

    header: Optional[str] = None
    cookie: Optional[str] = None


@attr.s(frozen=True, auto_attribs=True)
class Route:
    """
    One C{[[routes]]} entry: which requests it matches, and what answers
    them: an upstream, a redirect or a fixed response (exactly one).

    @ivar index: position in the C{routes} array, for messages (C{routes[2]}).
    @ivar upstream: name of an upstream in L{Config.upstreams}, or L{None}
        for a route with C{redirect} or C{respond}.
    @ivar path: a normalised path prefix, matched on whole segments;
        longest wins.
    @ivar hosts: lower-cased host names (C{"*.example.test"} allowed); empty
        means any host.
    @ivar preserve_host: overrides L{Upstream.preserve_host} when not None.
    @ivar methods: upper-case methods the request must use; empty: any.
    @ivar headers: C{(lower-case name, match)} pairs, sorted, that every
        request must satisfy.
    @ivar query: C{(parameter, match)} pairs, sorted, likewise.
    @ivar match: the matchers of the route's C{match} table, sorted by
        type.
    @ivar priority: orders routes with the same path prefix; higher first.
    @ivar strip_prefix: remove L{path} from the path sent to the backend.
    @ivar add_prefix: put this path in front of the path sent.
    @ivar rewrite: a regular expression replacement on the path sent.
    @ivar request_headers: header rules for the request sent to the backend.
    @ivar response_headers: header rules for the response sent back.
    @ivar redirect: answer with a redirect instead of forwarding.
    @ivar respond: answer with a fixed response instead of forwarding.
    @ivar error_pages: pages replacing the proxy's own answers of those
        statuses (and the backend's, for the statuses in
        L{intercept_errors}).
    @ivar filters: names of L{FilterConfig}s run on the route's requests,
        after the listener's.
    @ivar cache: the name of a L{CacheSettings} table in L{Config.caches}
        that stores this route's responses, or L{None}.
    @ivar connect_timeout: overrides L{Upstream.connect_timeout} when not
        None; likewise C{response_timeout}, C{read_timeout},
        C{send_timeout} and C{total_timeout}.
    @ivar redirect_rewrite: how C{Location}, C{Content-Location} and
        C{Refresh} are rewritten; L{None}: by the default rules when the
        route changes the path or does not preserve Host.
    @ivar cookie_domain: C{(domain, replacement)} pairs for the Domain of
        a Set-Cookie (lower-case, no leading dot; a replacement C{""}
        drops the attribute).
    @ivar cookie_path: C{(prefix, replacement)} pairs for the Path of a
        Set-Cookie, longest prefix first.
    @ivar name: the name the admin API knows the route by, or L{None}
        (then its index).
    @ivar intercept_errors: backend statuses whose body is replaced by the
        error page of that status.
    @ivar maintenance_retry_after: the C{Retry-After} seconds of the 503
        the route answers while in maintenance.
    @ivar pass_backend_banners: overrides
        L{ServerSettings.pass_backend_banners} when not None.
    @ivar upstreams: the sides of a split route (instead of L{upstream}),
        or empty.
    @ivar split_cookie: the cookie that keeps a client on the side it was
        sent to first, or L{None}.
    @ivar split_override: what forces a side, or L{None}.
    @ivar mirror: the name of the upstream each request is copied to, or
        L{None}.
    @ivar mirror_percent: the share of the requests copied, in percent.
    @ivar mirror_max_body: the largest request body copied, in bytes.
    @ivar mirror_timeout: seconds a copy may take, whatever the mirror's
        upstream allows.
    """

    index: int
    upstream: Optional[str] = None
    path: str = "/"
    hosts: Tuple[str, ...] = ()
    preserve_host: Optional[bool] = None
    methods: Tuple[str, ...] = ()
    headers: Tuple[Tuple[str, ValueMatch], ...] = ()
    query: Tuple[Tuple[str, ValueMatch], ...] = ()
    match: Tuple[MatcherConfig, ...] = ()
    priority: int = 0
    strip_prefix: bool = False
    add_prefix: Optional[str] = None
    rewrite: Optional[PathRegex] = None
    request_headers: Optional[HeaderRules] = None
    response_headers: Optional[HeaderRules] = None
    redirect: Optional[Redirect] = None
    respond: Optional[Respond] = None
    error_pages: Tuple[ErrorPage, ...] = ()
    filters: Tuple[str, ...] = ()
    cache: Optional[str] = None
    connect_timeout: Optional[float] = None
    response_timeout: Optional[float] = None
    read_timeout: Optional[float] = None
    send_timeout: Optional[float] = None
    total_timeout: Optional[float] = None

    def timeout(self, upstream: "Upstream", name: str) -> Optional[float]:
        """
        The route's timeout C{name} (such as C{"read_timeout"}): its own
        when it sets one, else its upstream's.
        """
        own = getattr(self, name)
        return getattr(upstream, name) if own is None else own
    redirect_rewrite: Optional[RedirectRewrite] = None
    cookie_domain: Tuple[Tuple[str, str], ...] = ()
    cookie_path: Tuple[Tuple[str, str], ...] = ()
    name: Optional[str] = None
    intercept_errors: Tuple[int, ...] = ()
    maintenance_retry_after: float = 60.0
    pass_backend_banners: Optional[bool] = None
    upstreams: Tuple[SplitSide, ...] = ()
    split_cookie: Optional[str] = None
    split_override: Optional[SplitOverride] = None
    mirror: Optional[str] = None
    mirror_percent: int = 100
    mirror_max_body: int = 65536
    mirror_timeout: float = 5.0

    @property
    def forwards(self) -> bool:
        """
        Whether the route forwards to upstreams (one, or a split) rather
        than answering by itself.
        """
        return self.upstream is not None or bool(self.upstreams)

    @property
    def upstream_names(self) -> Tuple[str, ...]:
        """
        The upstreams the route sends requests to: its upstream, or the
        sides of its split.
        """
        if self.upstream is not None:
            return (self.upstream,)
        return tuple(side.name for side in self.upstreams)

    @property
    def label(self) -> str:
        """
        What logs, metrics and C{txrevproxy route} call the route: its
        C{name}, else its position in the file (C{"0"}).
        """
        return str(self.index) if self.name is None else self.name

    @property
    def matchers(self) -> Tuple[MatcherConfig, ...]:
        """
        What a request must satisfy besides host and path: the route's
        C{methods}, C{headers} and C{query} (those it has), then its
        C{match} table, as one list of matchers of installed types, for
        comparing routes and for making their matchers.
        """
        own = (
            MatcherConfig(name, settings)
            for name, settings in (
                ("methods", self.methods),
                ("headers", self.headers),
                ("query", self.query),
            )
            if settings
        )
        return tuple(own) + self.match


@attr.s(frozen=True, auto_attribs=True)
class FilterConfig:
    """
    One C{[filters.NAME]} table.  Its options are checked by its type's
    C{configure} when the configuration is loaded, and the filter is made
    from them again by each runtime.

    @ivar name: the table's name, which routes and listeners refer to.
    @ivar type: the name of an installed
        L{txrevproxy.interfaces.IFilterType}.
    @ivar options: the table's other keys, as parsed from TOML.
    @ivar directory: the directory relative file options are taken from
        (the configuration file's).
    """

    name: str
    type: str
    options: Mapping[str, Any] = attr.Factory(dict)
    directory: str = ""


@attr.s(frozen=True, auto_attribs=True)
class CacheSettings:
    """
    One C{[caches.NAME]} table: a shared HTTP cache (RFC 9111) that routes
    name in their C{cache} key.

    @ivar store: the name of an installed
        L{txrevproxy.interfaces.ICacheStoreType}: C{"memory"}, or
        C{"disk"} (bodies in files under L{path}, for large objects), or a
        plugin's; or C{"redis:NAME"}, a C{[redis.NAME]} table shared by
        every process and instance, behind a memory store.
    @ivar path: the directory of a disk store, or the path a plugin's
        store uses (absolute once loaded).
    @ivar max_size: the bytes the store may hold (bodies and fields); the
        least recently used responses go first.
    @ivar max_object_size: the largest body stored; a larger response is
        passed on without being stored.
    @ivar default_ttl: the heuristic freshness lifetime, in seconds, of a
        storable response without explicit expiration, where RFC 9111
        section 4.2.2 allows one; C{0}: no heuristic freshness.
    @ivar store_set_cookie: store responses that carry Set-Cookie (their
        Set-Cookie fields are never stored nor sent to anyone else); by
        default such responses are not stored.
    @ivar targets: the lower-cased names of the targeted cache-control
        fields this cache obeys instead of Cache-Control (RFC 9213), the
        first present and valid one winning.
    @ivar remove_targeted: those of L{targets} removed from a response
        sent downstream when they are the one this cache used.
    @ivar broadcast: the C{[redis.NAME]} table purges and invalidations
        are published through to the other processes, or L{None}.
    @ivar redis_max_object_size: the largest body kept in a Redis store.
    """

    name: str
    store: str = "memory"
    path: Optional[str] = None
    max_size: int = 256 * 1024 * 1024
    max_object_size: int = 8 * 1024 * 1024
    default_ttl: float = 0.0
    store_set_cookie: bool = False
    targets: Tuple[str, ...] = ("cdn-cache-control",)
    remove_targeted: Tuple[str, ...] = ()
    broadcast: Optional[str] = None
    redis_max_object_size: int = 256 * 1024

    @property
    def redis_store(self) -> Optional[str]:
        """
        The C{[redis.NAME]} table of a Redis store, or L{None}.
        """
        if self.store.startswith("redis:"):
            return self.store[len("redis:") :]
        return None

    @property
    def broadcast_store(self) -> Optional[str]:
        """
        The table removals are broadcast through: L{broadcast}, else that
        of a Redis store, whose memory tiers must forget what is purged.
        """
        return self.broadcast if self.broadcast is not None else self.redis_store


@attr.s(frozen=True, auto_attribs=True)
class RedisAddress:
    """
    Where a Redis server is, as the C{url} of a C{[redis.NAME]} table says.

    @ivar tls: C{rediss://}: TLS, the server's certificate verified.
    @ivar host: the host name or address (L{None} for a unix socket).
    @ivar path: the unix socket's path (L{None} over TCP).
    @ivar db: the database number (C{SELECT}).
    @ivar username: for C{AUTH username password} (Redis 6 ACLs).
    @ivar password: the URL's password, if it has one.
    """

    tls: bool = False
    host: Optional[str] = "127.0.0.1"
    port: int = 6379
    path: Optional[str] = None
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = None


@attr.s(frozen=True, auto_attribs=True)
class RedisSettings:
    """
    One C{[redis.NAME]} table: a Redis server that filters and the
    connection limit share state through (see C{docs/scaling.rst}).

    @ivar url: the address, parsed (C{redis://}, C{rediss://} or
        C{unix://}).
    @ivar password: overrides the URL's password (the key is masked when
        the configuration is shown).
    @ivar timeout: how long one command may take before its caller falls
        back (and the server is taken as down for L{retry_interval}).
    @ivar connect_timeout: how long a connection may take to be made.
    @ivar pool_size: connections kept to the server; commands are
        pipelined on them.
    @ivar retry_interval: how long, once the server failed, every call
        goes straight to its fallback before a connection is tried again.
    @ivar ca: a PEM file of the certificate authorities a C{rediss://}
        server's certificate is checked against, instead of the system's.
    """

    name: str
    url: RedisAddress
    password: Optional[str] = None
    timeout: float = 0.25
    connect_timeout: float = 1.0
    pool_size: int = 2
    retry_interval: float = 1.0
    ca: Optional[str] = None


@attr.s(frozen=True, auto_attribs=True)
class Config:
    """
    A whole, validated configuration.

    @ivar tls: the C{[tls.NAME]} tables, by name.
    @ivar filters: the C{[filters.NAME]} tables, by name.
    @ivar caches: the C{[caches.NAME]} tables, by name.
    @ivar redis: the C{[redis.NAME]} tables, by name.
    @ivar log: the C{[log]} table.
    @ivar admin: the C{[admin]} table; L{None}: no admin API.
    @ivar tracing: the C{[tracing]} table; L{None}: no traces.
    @ivar source: the path it was read from, if any.
    @ivar document: the L{txrevproxy.config.document.Document} it was made
        from (includes merged, variables substituted), or L{None}; kept so
        that the effective configuration of a running proxy can be written
        (C{GET /config} of the admin API) from what it serves, not from a
        file that may have changed since.  Not compared.
    """

    server: ServerSettings
    listeners: Mapping[str, Listener]
    upstreams: Mapping[str, Upstream]
    routes: Tuple[Route, ...]
    tls: Mapping[str, TLS] = attr.Factory(dict)
    filters: Mapping[str, "FilterConfig"] = attr.Factory(dict)
    caches: Mapping[str, CacheSettings] = attr.Factory(dict)
    redis: Mapping[str, RedisSettings] = attr.Factory(dict)
    log: LogSettings = LogSettings()
    admin: Optional[AdminSettings] = None
    tracing: Optional[TracingSettings] = None
    source: Optional[str] = None
    document: Any = attr.ib(default=None, eq=False, repr=False)
