"""
The runtime: the live objects (balancers, pools, resource tree, sites)
built from one L{Config}.

A reload builds a whole new L{Runtime} from the new configuration and
swaps it in; nothing in a runtime is patched in place.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import IResource

from ..cache.broadcast import BroadcastListener
from ..cache.shared import SharedCache, build_caches
from ..config.model import BackendServer, Config, Listener, Upstream
from ..filters.build import build_filters
from ..filters.chain import FilteredResource
from ..forward.maintenance import MaintenanceSwitch
from ..interfaces import IBalancingPolicy
from ..observe.accesslog import AccessLog
from ..observe.metrics import Metrics
from ..observe.requests import RequestObserver
from ..observe.tracing import Tracing
from ..plugins import balancing_policies
from ..redis.client import RedisClient, redis_clients
from ..routing.acme_challenge import AcmeChallenges
from ..routing.redirects import HttpsRedirect
from ..server.connection_counts import SharedConnectionCounts
from ..server.http2 import NegotiatingSite, PriorKnowledgeSite
from ..server.proxy_protocol import ProxyHeaderFactory
from ..server.site import ProxySite
from ..tls.client import BACKEND_PROTOCOLS, HTTP2_PROTOCOLS
from ..tls.acme.storage import storages
from ..tls.server import tls_factory
from ..tls.store import CertificateStore
from ..tls.watch import CertificateWatcher
from ..upstream.balancer import Backend, Balancer
from ..upstream.discovery import Discovery, make_resolver
from ..upstream.h2pool import H2ConnectionPool
from ..upstream.health import HealthChecker
from ..upstream.pool import ConnectionPool, backend_endpoint
from .assembly import build_root, maintenance_switches, page_table

log = Logger()

#: Seconds between checks whether a runtime a reload replaced is idle.
RETIRE_CHECK = 1.0


def _warn_unverified(upstream: Upstream) -> None:
    """
    Say, once per runtime, which https backends are not verified.
    """
    for index, server in enumerate(upstream.servers):
        if server.scheme == "https" and not upstream.backend_tls(server).verify:
            log.warn(
                "upstreams.{upstream}.servers[{index}]: verify = false: the "
                "certificate of {url} is not checked; anyone on the path can "
                "impersonate this backend",
                upstream=upstream.name,
                index=index,
                url=server.url,
            )


def _serves_http2(listener: Listener) -> bool:
    """
    Whether a TLS listener offers HTTP/2 through ALPN, as browsers ask for
    it.
    """
    return listener.tls is not None and listener.http2


def _backend_pool(
    upstream: Upstream, server, reactor, connect_timeout: float
):
    """
    The connection pool of one backend: keep-alive HTTP/1.1 connections,
    or shared HTTP/2 ones for an upstream with C{protocol = "h2"} (offered
    through ALPN) or C{"h2c"}.
    """
    http2 = upstream.protocol != "http/1.1"
    endpoint = backend_endpoint(
        reactor,
        server,
        connect_timeout,
        upstream.backend_tls(server),
        HTTP2_PROTOCOLS if http2 else BACKEND_PROTOCOLS,
    )
    if http2:
        return H2ConnectionPool(
            reactor,
            endpoint,
            server.url,
            idle_timeout=upstream.idle_timeout,
            max_streams=upstream.max_streams,
            scheme=server.scheme.encode("ascii"),
            connect_timeout=connect_timeout,
        )
    return ConnectionPool(
        reactor,
        endpoint,
        server.url,
        idle_timeout=upstream.idle_timeout,
        max_idle=upstream.max_idle_connections,
        connect_timeout=connect_timeout,
        proxy_protocol=upstream.proxy_protocol,
    )


def _site_factory(listener: Listener) -> Callable[..., ProxySite]:
    """
    What makes the site of a listener: it may start HTTP/2 connections by
    ALPN (TLS, C{http2}), by the connection preface or an upgrade
    (cleartext, C{h2c} and C{h2c_upgrade}), or speak HTTP/1.1 only.
    """
    if _serves_http2(listener):
        return NegotiatingSite
    if listener.tls is None and listener.h2c:
        return partial(PriorKnowledgeSite, upgrade=listener.h2c_upgrade)
    return ProxySite


def _balancer(
    upstream: Upstream,
    reactor,
    policies: Mapping[str, IBalancingPolicy],
    connect_timeout: float,
    resolvers: Dict[Tuple[Tuple[str, int], ...], Any],
    default_resolvers: Tuple[Tuple[str, int], ...],
    previous_lookups: Mapping[Tuple[str, BackendServer], Sequence[BackendServer]],
) -> Tuple[Balancer, List[Discovery]]:
    """
    The balancer of one upstream: a backend with its connection pool for
    each server, and the picker of the upstream's policy; and a
    L{Discovery} for each of its C{dns} and C{srv} entries, which adds
    their backends as they are found.

    @param policies: the installed balancing policies, by name.
    @param connect_timeout: the longest connect timeout of the upstream and
        the routes to it, the endpoints' own; a route that asks for less
        has its pool apply it.
    @param resolvers: the resolvers made so far, by their DNS servers,
        shared by the upstreams that name the same ones.
    @param default_resolvers: C{[server] resolvers}.
    @param previous_lookups: what the entries found in the runtime a
        reload replaces (see L{Runtime.found_servers}).
    """

    def make_backend(server: BackendServer) -> Backend:
        return Backend(
            server,
            _backend_pool(upstream, server, reactor, connect_timeout),
            reactor,
            upstream.slow_start,
        )

    backends = [make_backend(server) for server in upstream.servers if server.lookup is None]
    policy = policies[upstream.balance]
    rng = random.Random()

    def remake_picker(backends):
        return policy.picker(upstream, backends, reactor, rng)

    balancer = Balancer(upstream, backends, remake_picker(backends), reactor, remake_picker)
    discoveries = []
    if upstream.lookups:
        servers = upstream.resolvers if upstream.resolvers is not None else default_resolvers
        resolver = resolvers.get(servers)
        if resolver is None:
            resolver = resolvers[servers] = make_resolver(servers, reactor)
        discoveries = [
            Discovery(
                balancer,
                entry,
                resolver,
                make_backend,
                reactor,
                previous_lookups.get((upstream.name, entry), ()),
            )
            for entry in upstream.lookups
        ]
    return balancer, discoveries


def _shared_counts(
    store: Optional[str],
    clients: Mapping[str, RedisClient],
    reactor,
    previous: Optional[SharedConnectionCounts],
) -> Optional[SharedConnectionCounts]:
    """
    The connection counts shared through the C{[redis.NAME]} table of
    C{[server] max_connections_per_ip_store}, if any: the previous
    runtime's while the client is the same, so that the connections a
    reload hands over stay counted.
    """
    if store is None:
        return None
    client = clients[store]
    if previous is not None and previous.client is client:
        return previous
    return SharedConnectionCounts(client, reactor)


def _subject_header(config: Config, listener) -> Optional[bytes]:
    """
    The header a listener sends the verified client subject in, if its TLS
    table asks for client certificates and names one.
    """
    block = config.tls.get(listener.tls) if listener.tls is not None else None
    if block is None or block.client_ca is None or not block.client_subject_header:
        return None
    return block.client_subject_header.encode("ascii")


class Runtime:
    """
    Everything that serves requests for one configuration.

    @ivar sites: the L{ProxySite} of each listener, by listener name.
    @ivar factories: what each listener listens with: its site, or the
        site wrapped in TLS, and either behind the PROXY protocol's header.
    @ivar stores: the L{CertificateStore} of each C{[tls.NAME]} table a
        listener uses, by table name.
    @ivar balancers: the L{Balancer} of each upstream, by upstream name.
    @ivar root: the L{Router}, the resource tree all routed listeners share.
    @ivar filters: the configured filters
        (L{txrevproxy.interfaces.IFilter}), by name.
    @ivar redis: the L{RedisClient} of each C{[redis.NAME]} table, by
        name; a reload passes them to the new runtime (C{previous_redis}),
        which keeps those of the tables it did not change.
    @ivar connection_counts: the L{SharedConnectionCounts} of C{[server]
        max_connections_per_ip_store}, or L{None}; a reload passes it to
        the new runtime (C{previous_counts}).
    @ivar caches: the L{SharedCache} of each C{[caches.NAME]} table, by
        name; a reload passes them to the new runtime (C{previous_caches}),
        which keeps their stores.
    @ivar cache_listeners: the L{BroadcastListener} of each cache with a
        broadcast, for the service to start and stop.
    @ivar health_checkers: the L{HealthChecker} of each upstream with a
        C{health} table, for the service to start and stop.
    @ivar discoveries: the L{Discovery} of each C{dns} and C{srv} server
        entry, for the service to start and stop.
    @ivar watchers: the L{CertificateWatcher} of each store whose table
        C{watch}es its files, for the service to start and stop.
    @ivar ports: the port each listener listens on, once it does (an HTTP
        listener redirecting to HTTPS needs the HTTPS one's).
    @ivar closed: whether L{close} was called.
    @ivar switches: the L{MaintenanceSwitch} of each forwarding route, by
        route index; a reload passes those of named routes to the new
        runtime (C{previous_switches}, by name), so maintenance outlasts it.
    @ivar tracing: the L{Tracing} of its sites, or L{None}; several
        runtimes share one until a reload changes the C{[tracing]} table.
    @ivar last_of_tracing: whether no runtime after this one uses its
        C{tracing}, which L{close} then stops.

    The C{dns} and C{srv} entries of upstreams start with the servers
    they found in the runtime a reload replaced (C{previous_lookups}, by
    upstream name and entry).

    Each site counts its requests in C{metrics} (a new L{Metrics} when not
    given) and writes them to C{access_log} (none when not given).  In a
    worker process, C{worker} is its index (see L{build_caches}).
    """

    def __init__(
        self,
        config: Config,
        reactor,
        previous_caches: Mapping[str, SharedCache] = {},
        metrics: Optional[Metrics] = None,
        access_log: Optional[AccessLog] = None,
        previous_switches: Mapping[str, MaintenanceSwitch] = {},
        worker: Optional[int] = None,
        tracing: Optional[Tracing] = None,
        previous_lookups: Mapping[Tuple[str, BackendServer], Sequence[BackendServer]] = {},
        previous_redis: Mapping[str, RedisClient] = {},
        previous_counts: Optional[SharedConnectionCounts] = None,
    ) -> None:
        self.config = config
        self._reactor = reactor
        self.tracing = tracing
        self.last_of_tracing = False
        metrics = Metrics() if metrics is None else metrics
        if access_log is None:
            access_log = AccessLog(reactor)
        self.balancers: Dict[str, Balancer] = {}
        self.health_checkers: List[HealthChecker] = []
        self.discoveries: List[Discovery] = []
        resolvers: Dict[Tuple[Tuple[str, int], ...], Any] = {}
        policies = balancing_policies()
        for name, upstream in config.upstreams.items():
            _warn_unverified(upstream)
            connect_timeout = max(
                [upstream.connect_timeout]
                + [
                    route.connect_timeout
                    for route in config.routes
                    if name in route.upstream_names and route.connect_timeout is not None
                ]
            )
            balancer, discoveries = _balancer(
                upstream,
                reactor,
                policies,
                connect_timeout,
                resolvers,
                config.server.resolvers,
                previous_lookups,
            )
            self.balancers[name] = balancer
            self.discoveries.extend(discoveries)
            if upstream.health is not None:
                self.health_checkers.append(
                    HealthChecker(balancer, upstream.health, reactor, random.Random())
                )

        self.redis = redis_clients(config.redis, reactor, previous_redis)
        self.connection_counts = _shared_counts(
            config.server.max_connections_per_ip_store, self.redis, reactor, previous_counts
        )
        self.filters = build_filters(
            config,
            reactor,
            self.redis,
            metrics,
            1 if worker is None else config.server.workers,
        )
        self.caches = build_caches(
            config.caches, reactor, previous_caches, metrics, worker, self.redis
        )
        self.cache_listeners = [
            BroadcastListener(cache.broadcast, cache.removed_elsewhere)
            for cache in self.caches.values()
            if cache.broadcast is not None
        ]
        self.switches = maintenance_switches(config.routes, previous_switches)
        self.root = build_root(
            config,
            self.balancers,
            reactor,
            self.filters,
            self.caches,
            self.switches,
            metrics,
        )
        self.stores: Dict[str, CertificateStore] = {
            name: CertificateStore(block, reactor)
            for name, block in config.tls.items()
            if any(listener.tls == name for listener in config.listeners.values())
        }
        self.watchers: List[CertificateWatcher] = [
            CertificateWatcher(store, config.tls[name], config.tls[name].watch, reactor)
            for name, store in self.stores.items()
            if config.tls[name].watch is not None
        ]
        self.ports: Dict[str, int] = {}
        self._retiring: Optional[LoopingCall] = None
        self.closed = False
        self.sites: Dict[str, ProxySite] = {
            name: _site_factory(listener)(
                self._listener_root(listener),
                reactor=reactor,
                settings=config.server,
                scheme=b"http" if listener.tls is None else b"https",
                hsts=None if listener.hsts is None else listener.hsts.encode("ascii"),
                client_subject_header=_subject_header(config, listener),
                proxy_protocol=listener.proxy_protocol,
                stats=metrics.listener(name),
                observe=RequestObserver(
                    name, self.root, metrics, access_log, reactor
                ),
                error_pages=page_table(listener.error_pages),
                tracing=tracing,
                connection_counts=(
                    None
                    if self.connection_counts is None
                    else self.connection_counts.listener(name)
                ),
            )
            for name, listener in config.listeners.items()
        }
        self.factories: Dict[str, IProtocolFactory] = {
            name: self._listener_factory(listener, self.sites[name], reactor)
            for name, listener in config.listeners.items()
        }

    @property
    def services(self) -> List[Service]:
        """
        What runs on a timer while this runtime serves: its DNS lookups,
        health checkers, certificate watchers, shared connection counts
        and cache broadcast listeners, children of the proxy service.
        """
        shared = [] if self.connection_counts is None else [self.connection_counts]
        return (
            self.discoveries + self.health_checkers + self.watchers + shared + self.cache_listeners
        )

    def _listener_factory(
        self, listener: Listener, site: ProxySite, reactor
    ) -> IProtocolFactory:
        """
        What a listener's connections are made by: its site, under TLS on
        a TLS listener, and under the PROXY protocol's header (which comes
        before TLS) on a listener with C{proxy_protocol}.  Part of the
        runtime, so that a reload that turns either on or off applies to
        the connections accepted from then on.
        """
        factory: IProtocolFactory = site
        if listener.tls is not None:
            factory = tls_factory(
                site, self.stores[listener.tls], _serves_http2(listener), reactor
            )
        if listener.proxy_protocol:
            # With trusted_proxies, only those may name another client.
            factory = ProxyHeaderFactory(
                factory,
                reactor,
                self.config.server.header_timeout,
                site.is_trusted if self.config.server.trusted_proxies else None,
            )
        return factory

    def _listener_root(self, listener: Listener) -> IResource:
        """
        The root resource of a listener's site: the routes, or the redirect
        to the HTTPS listener, behind the listener's own filters, and on a
        listener without TLS behind the answers to ACME HTTP-01 challenges.
        The filters are part of the tree, so they change with the site, for
        connections already open as well (see L{ProxySite.handOver}).
        """
        if listener.redirect_to_https is None:
            root: IResource = self.root
        else:
            root = HttpsRedirect(
                lambda target=listener.redirect_to_https: self.ports[target]
            )
        if listener.filters:
            filters = [self.filters[name] for name in listener.filters]
            root = FilteredResource(filters, root)
        challenges = storages(self.config)
        if listener.tls is None and challenges:
            root = AcmeChallenges(challenges, root)
        return root

    def found_servers(self) -> Dict[Tuple[str, BackendServer], Tuple[BackendServer, ...]]:
        """
        The servers each C{dns} and C{srv} entry found last, by upstream
        name and entry, for the runtime a reload builds
        (C{previous_lookups}): it starts with them rather than with none.
        """
        return {
            (discovery.upstream, discovery.entry): tuple(
                backend.server for backend in discovery.held
            )
            for discovery in self.discoveries
        }

    def named_switches(self) -> Dict[str, MaintenanceSwitch]:
        """
        The maintenance switches of the named routes, by name, for the
        runtime a reload builds.
        """
        routes = self.config.routes
        return {
            routes[index].name: switch
            for index, switch in self.switches.items()
            if routes[index].name is not None
        }

    def reload_certificates(self) -> List[str]:
        """
        Read every listener certificate again (see
        L{CertificateStore.reload}).

        @return: the problems found, each a sentence with its key path.
        """
        problems: List[str] = []
        for store in self.stores.values():
            problems.extend(store.reload())
        return problems

    def close(self) -> Deferred:
        """
        Close the backend pools (idle connections now, busy ones when their
        exchanges end) and the filters that hold connections of their own,
        and stop the tracing when it is the L{last_of_tracing}.

        @return: a L{Deferred} that fires when the filters are closed and
            the spans exported.  Called again (a runtime a reload retired
            and closed, then the service's stop), it does nothing more.
        """
        if self.closed:
            return succeed(None)
        if self._retiring is not None and self._retiring.running:
            self._retiring.stop()
        self._retiring = None
        self.closed = True
        for balancer in self.balancers.values():
            balancer.close()
        closing = [
            maybeDeferred(each.close)
            for each in self.filters.values()
            if getattr(each, "close", None) is not None
        ]
        if self.last_of_tracing and self.tracing is not None:
            closing.append(self.tracing.stop(self._reactor))
        return DeferredList(closing)

    def retire(self) -> None:
        """
        A reload replaced this runtime: L{close} it once no request is in
        flight or queued on its balancers (closing at once would answer the
        queued ones 503), checked every L{RETIRE_CHECK} seconds.
        """
        self._retiring = LoopingCall(self._closeWhenIdle)
        self._retiring.clock = self._reactor
        self._retiring.start(RETIRE_CHECK, now=True)

    def _closeWhenIdle(self) -> None:
        if not any(b.in_flight or b.queued for b in self.balancers.values()):
            self.close()
