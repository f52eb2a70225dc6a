"""
ProxyService: the twistd service that owns the listeners and the runtime,
reloads the configuration and shuts down gracefully.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import __version__
from ..config import ConfigError, load_config
from ..config.model import Config
from ..net.nodelay import accept_without_delay
from ..observe.accesslog import AccessLog
from ..observe.metrics import Metrics, Snapshot
from ..observe.tracing import Tracing
from ..observe.window import MinuteWindow, Window
from ..tls.stapling import OCSPStapler, ResponderClient
from ..tls.store import CertificateError
from .certificates import CertificateManagers
from .maintenance import find_route, route_states
from .runtime import Runtime

log = Logger()

#: Listen backlog for TCP listeners that do not set one: Twisted's default
#: of 50 refuses connections under a burst; nginx uses 511.
DEFAULT_BACKLOG = 511


def with_default_backlog(description: str) -> str:
    """
    A server endpoint description with L{DEFAULT_BACKLOG} added when it is
    a TCP (or SSL) endpoint that does not choose a backlog itself.
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return description + ":backlog=%d" % (DEFAULT_BACKLOG,)
    return description


def config_digest(config: Config) -> Optional[str]:
    """
    The SHA-256 of the configuration file, for the status (which file is
    being served, whatever its name); L{None} when it cannot be read.
    """
    if config.source is None:
        return None
    try:
        with open(config.source, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None


def moved_listeners(old: Config, new: Config) -> List[str]:
    """
    The problems of a reload that adds, removes or moves a listener, for a
    proxy with workers: their sockets were opened by the parent at start.
    """
    before = {name: listener.endpoint for name, listener in old.listeners.items()}
    after = {name: listener.endpoint for name, listener in new.listeners.items()}
    return [
        "listeners.%s.endpoint: changed; with [server] workers, adding, "
        "removing or moving a listener needs a restart" % (name,)
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def restart_only_changes(old: Config, new: Config) -> List[str]:
    """
    The problems of a reload that changes what only a restart can change,
    in single-process mode as with workers: the number of processes, and
    where the admin API listens, are fixed when twistd starts.  A reload
    that would leave the admin API listening without the table that
    configured it (and so without its token) is refused with them.
    """
    problems = []
    if new.server.workers != old.server.workers:
        problems.append("server.workers: changed; this needs a restart")
    before, after = old.admin, new.admin
    if before is None and after is not None:
        problems.append("admin: added; the admin API starts only at a restart")
    elif before is not None and after is None:
        problems.append(
            "admin: removed; the admin API listens on %s until a restart, "
            "which this needs" % (before.endpoint,)
        )
    elif before is not None and before.endpoint != after.endpoint:
        problems.append(
            "admin.endpoint: changed; the admin API listens on %s until a "
            "restart, which this needs" % (before.endpoint,)
        )
    return problems


def tracing_for(config: Config, current: Optional[Tracing], reactor) -> Optional[Tracing]:
    """
    The tracing of C{config}: C{current} when its C{[tracing]} table is
    the same, else a new one (not started yet), or L{None} without the
    table.
    """
    if current is not None and current.settings == config.tracing:
        return current
    if config.tracing is None:
        return None
    return Tracing(config.tracing, reactor)


class ListenError(Exception):
    """
    A listener could not open its endpoint or read its certificates; the
    message names the key.
    """


def listen_now(reactor, description: str, factory, key: str):
    """
    Listen on an endpoint, synchronously where the endpoint allows (TCP and
    UNIX do), so that a failure stops what is being started at once.

    @param key: the key path the description came from, for the message.
    @return: the listening port.
    @raise ListenError: it cannot listen; the message names C{key}.
    """
    endpoint = serverFromString(reactor, with_default_backlog(description))
    result: List[Any] = []
    endpoint.listen(factory).addBoth(result.append)
    if result and isinstance(result[0], Failure):
        message = "%s: cannot listen on %s: %s" % (
            key,
            description,
            result[0].getErrorMessage(),
        )
        log.critical("{message}", message=message)
        raise ListenError(message)
    return result[0]


class ListenerSlot(Factory):
    """
    The factory a listening port keeps across reloads: it hands each new
    connection to the current runtime's factory for its listener, so that
    a reload swaps what serves a listener without closing its socket.
    """

    noisy = False

    def __init__(self, factory) -> None:
        self.current = factory

    def startFactory(self) -> None:
        self.current.doStart()

    def stopFactory(self) -> None:
        self.current.doStop()

    def buildProtocol(self, addr):
        return self.current.buildProtocol(addr)

    def switch(self, factory) -> None:
        """
        Serve new connections with C{factory}; those open stay with the
        factory that accepted them.
        """
        factory.doStart()
        old, self.current = self.current, factory
        old.doStop()


class ProxyService(MultiService):
    """
    Runs the proxy: listens on every listener's endpoint and serves requests
    through a L{Runtime}, replaced whole by L{reload}.

    Listening happens in L{privilegedStartService} when run by twistd (so
    that ports below 1024 are bound before privileges are dropped) and
    synchronously where the endpoint allows, so that a port already in use
    stops the start with a sentence rather than a traceback.

    The runtime's health checkers and certificate watchers
    (L{Runtime.services}) are child services: they start and stop
    with this one, and a reload replaces them.  So is L{stapler}, which a
    reload keeps: it is told which certificates are served after each.
    The ACME certificate managers (L{certificates}) are children too, and
    outlive reloads as well.

    @ivar metrics: the process's L{Metrics}, kept across reloads.
    @ivar stapler: the process's L{OCSPStapler}, which fetches the OCSP
        responses of the certificates with C{ocsp_fetch}.
    @ivar access_log: the process's L{AccessLog}.
    @ivar window: the last minute of L{metrics}, for the status page.
    @ivar tracing: the L{Tracing} of the C{[tracing]} table, or L{None};
        kept across reloads that leave the table as it was.
    @ivar started: when the service was made, for the uptime.
    @ivar loaded: when the configuration served now was loaded.
    @param inherited: for a worker process, the listening sockets its
        parent opened: by listener name, C{(file descriptor, address
        family)}; they are adopted instead of listening.
    @param worker: for a worker process, its index, which its access log
        lines carry.
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor,
        inherited: Optional[Mapping[str, Tuple[int, int]]] = None,
        worker: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        self._inherited = dict(inherited or {})
        self._worker = worker
        self.runtime: Optional[Runtime] = None
        self.metrics = Metrics()
        self.access_log = AccessLog(reactor, worker=worker)
        self.tracing = tracing_for(config, None, reactor)
        self.started = self.loaded = reactor.seconds()
        self._slots: Dict[str, ListenerSlot] = {}
        self._ports: Dict[str, Any] = {}
        self._retired: List[Runtime] = []
        self._drained: Set[Tuple[str, str]] = set()
        self._config_digest = config_digest(config)
        # The event log's lines are chosen once, when the process begins
        # logging (see txrevproxy.observe.eventlog).
        self._events = config.log.events
        self.stapler = OCSPStapler(reactor, ResponderClient(reactor).ask)
        self.stapler.setServiceParent(self)
        self.window = MinuteWindow(self.metrics, reactor)
        self.window.setServiceParent(self)
        self.certificates = CertificateManagers(reactor, self._certificateRenewed)
        if not self._inherited:
            # A worker reads the certificates its supervisor orders.
            self.certificates.configure(config)
            self.certificates.setServiceParent(self)

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        if self.runtime is None:
            self._listen()
        self.access_log.start()
        if self.tracing is not None:
            self.tracing.start()
        super().startService()

    def _listen(self) -> None:
        try:
            self._configure_access_log(self.config)
            runtime = self.runtime = self._runtime(self.config, self.tracing)
        except ListenError as error:
            self.log.critical("{message}", message=str(error))
            raise
        self._observe(runtime)
        for child in runtime.services:
            child.setServiceParent(self)
        self.stapler.watch(runtime.stores.values())
        for name, listener in self.config.listeners.items():
            slot = ListenerSlot(runtime.factories[name])
            try:
                self._ports[name] = self._open(name, listener.endpoint, slot)
            except ListenError:
                self._stopListening()
                raise
            self._slots[name] = slot
            self._listening(name)

    def _observe(self, runtime: Runtime) -> None:
        """
        Have the metrics read what C{runtime}, now serving, knows at each
        scrape: its balancers, its caches' stores, its certificates.
        """
        metrics = self.metrics
        metrics.balancers = runtime.balancers
        metrics.use_caches(runtime.caches)
        metrics.certificates = runtime.stores

    def _runtime(self, config: Config, tracing: Optional[Tracing]) -> Runtime:
        try:
            runtime = Runtime(
                config,
                self._reactor,
                previous_caches=self.runtime.caches if self.runtime is not None else {},
                metrics=self.metrics,
                access_log=self.access_log,
                previous_switches=(
                    self.runtime.named_switches() if self.runtime is not None else {}
                ),
                previous_lookups=(
                    self.runtime.found_servers() if self.runtime is not None else {}
                ),
                worker=self._worker,
                tracing=tracing,
                previous_redis=self.runtime.redis if self.runtime is not None else {},
                previous_counts=(
                    self.runtime.connection_counts if self.runtime is not None else None
                ),
            )
        except CertificateError as error:
            # The files changed since the configuration was validated.
            raise ListenError(str(error))
        return runtime

    def _configure_access_log(self, config: Config) -> None:
        """
        Write the access log as C{config} says from now on.

        @raise ListenError: its file cannot be opened.
        """
        try:
            self.access_log.configure(config.log)
        except OSError as error:
            raise ListenError(
                "log.access: cannot open %s: %s"
                % (config.log.access, error.strerror or error)
            )

    def _open(self, name: str, description: str, factory):
        """
        Listen on a listener's endpoint (or adopt the socket the parent
        process opened for it).

        @raise ListenError: it cannot listen; the message names the key.
        """
        if name in self._inherited:
            fd, family = self._inherited[name]
            port = self._reactor.adoptStreamPort(fd, family, factory)
        else:
            port = listen_now(
                self._reactor, description, factory, "listeners.%s.endpoint" % (name,)
            )
        accept_without_delay(port)
        return port

    def _listening(self, name: str) -> None:
        port = self._ports[name]
        self.runtime.ports[name] = getattr(port.getHost(), "port", 0)
        self.log.info("listener {name} on {address}", name=name, address=port.getHost())

    def _stopListening(self) -> Deferred:
        ports = list(self._ports.values())
        self._ports = {}
        self._slots = {}
        return DeferredList(
            [d for d in (port.stopListening() for port in ports) if d is not None]
        )

    # Reloading ---------------------------------------------------------------

    def reload(self, config: Optional[Config] = None) -> List[str]:
        """
        Read the configuration file again (or take C{config}) and, when it
        is valid and everything it needs can be set up, serve it from now
        on, in one step: connections accepted from now on, and new requests
        on open connections, get the new runtime; requests in flight finish
        on the old one, whose backend pools close once it is idle.

        A listener whose endpoint did not change keeps its socket; a new or
        changed one listens before anything is swapped, so that a port in
        use fails the reload, not the listener; a removed one stops
        listening and its connections close once idle.  Certificates are
        read again, as the new runtime reads them.

        @return: the problems that kept the old configuration, each a
            sentence with its key path (logged too); empty on success.
        """
        if config is None:
            try:
                config = load_config(self.config.source)
            except ConfigError as error:
                return self._reloadFailed(error.problems)
        problems = self._listener_problems(config)
        if problems:
            return self._reloadFailed(problems)
        try:
            runtime = self._runtime(config, tracing_for(config, self.tracing, self._reactor))
        except ListenError as error:
            return self._reloadFailed([str(error)])
        opened: Dict[str, Tuple[Any, ListenerSlot]] = {}
        try:
            for name, listener in config.listeners.items():
                before = self.config.listeners.get(name)
                if before is None or before.endpoint != listener.endpoint:
                    slot = ListenerSlot(runtime.factories[name])
                    opened[name] = (self._open(name, listener.endpoint, slot), slot)
            self._configure_access_log(config)
        except ListenError as error:
            for port, _ in opened.values():
                port.stopListening()
            runtime.close()
            return self._reloadFailed([str(error)])
        self._redrain(runtime)
        self._swap(config, runtime, opened)
        if not self._inherited:
            self.certificates.configure(config)
        self._config_digest = config_digest(config)
        self.loaded = self._reactor.seconds()
        self.metrics.reloaded(True)
        self.log.info("reload: serving the configuration of {source}", source=config.source)
        if config.log.events != self._events:
            self.log.warn(
                "reload: log.events: the event log keeps its {events} lines until a restart",
                events=self._events,
            )
        return []

    def _listener_problems(self, config: Config) -> List[str]:
        """
        What keeps the listeners of C{config} from being served: a worker
        process cannot open sockets of its own, and no process can change
        how many workers serve it.
        """
        problems = restart_only_changes(self.config, config)
        if self._inherited:
            problems = moved_listeners(self.config, config) + problems
        return problems

    def _swap(
        self, config: Config, runtime: Runtime, opened: Mapping[str, Tuple[Any, ListenerSlot]]
    ) -> None:
        old, self.runtime = self.runtime, runtime
        old_config, self.config = self.config, config
        if runtime.tracing is not old.tracing:
            # Spans of the requests in flight on the old runtime end in
            # its tracing, stopped once they are done.
            old.last_of_tracing = True
            self.tracing = runtime.tracing
            if self.tracing is not None:
                self.tracing.start()
        ports: Dict[str, Any] = {}
        slots: Dict[str, ListenerSlot] = {}
        for name in config.listeners:
            if name in opened:
                ports[name], slots[name] = opened[name]
            else:
                ports[name] = self._ports.pop(name)
                slots[name] = self._slots[name]
                slots[name].switch(runtime.factories[name])
                # Connections already open are served by the new site too.
                old.sites[name].handOver(runtime.sites[name])
        for port in self._ports.values():
            port.stopListening()
        self._ports, self._slots = ports, slots
        for name in old_config.listeners:
            if name not in config.listeners or name in opened:
                old.sites[name].closeIdleConnections()
        for name in config.listeners:
            self._listening(name)
        for child in old.services:
            child.disownServiceParent()
        for child in runtime.services:
            child.setServiceParent(self)
        self.stapler.watch(runtime.stores.values())
        self.metrics.retire(old.balancers)
        self._observe(runtime)
        old.retire()
        self._retired = [r for r in self._retired if not r.closed] + [old]
        kept = set(map(id, runtime.redis.values()))
        for client in old.redis.values():
            if id(client) not in kept:
                client.close()

    def _reloadFailed(self, problems: List[str]) -> List[str]:
        for problem in problems:
            self.log.error("reload: {problem}", problem=problem)
        self.log.error("reload failed: still serving the previous configuration")
        self.metrics.reloaded(False)
        return problems

    def reload_certificates(self) -> List[str]:
        """
        Read the listeners' certificate files again: new handshakes get the
        new certificates, established connections keep theirs, and a
        certificate whose new files are broken keeps being served from the
        old ones.

        @return: the problems found, each a sentence with its key path;
            they are also logged.
        """
        if self.runtime is None:
            return []
        return self.runtime.reload_certificates()

    def _certificateRenewed(self, table: str) -> None:
        """
        The ACME certificate of C{table} was stored: serve it now.
        """
        store = self.runtime.stores.get(table) if self.runtime is not None else None
        if store is not None:
            store.reload()

    def reopen_logs(self) -> None:
        """
        Open the access log file again (SIGUSR1, after logrotate).
        """
        self.access_log.reopen()

    # What the admin API asks (see txrevproxy.app.admin.IProxyControl) -----------

    def admin_token(self) -> Optional[str]:
        admin = self.config.admin
        return None if admin is None else admin.token

    def readiness(self) -> List[str]:
        """
        Why this process should not get traffic: not started, stopping
        (draining the requests in flight), or a listener not listening.
        Backends are left out on purpose: a proxy whose backends are all
        down still answers (503s), and taking every proxy out of a load
        balancer because a shared backend failed would only widen the
        outage.
        """
        if self.runtime is None:
            return ["not started"]
        if not self.running:
            return ["stopping: finishing the requests in flight"]
        return [
            "listeners.%s: not listening" % (name,)
            for name in self.config.listeners
            if name not in self._ports
        ]

    def status(self) -> Dict[str, Any]:
        """
        The status document of this process.
        """
        stats = self.metrics.listener
        return {
            "version": __version__,
            "pid": os.getpid(),
            "worker": self._worker,
            "uptime": self._reactor.seconds() - self.started,
            "config": {
                "file": self.config.source,
                "sha256": self._config_digest,
                "loaded": self.loaded,
            },
            "listeners": {
                name: {
                    "endpoint": listener.endpoint,
                    "port": self.runtime.ports.get(name),
                    "connections": stats(name).connections,
                }
                for name, listener in self.config.listeners.items()
            },
            "upstreams": {
                name: balancer.state()
                for name, balancer in self.runtime.balancers.items()
            },
            "routes": self.routes(),
        }

    def routes(self) -> List[Dict[str, Any]]:
        """
        The routes, and which are in maintenance.
        """
        return route_states(self.config.routes, self.runtime.switches)

    def set_maintenance(self, key: str, on: bool) -> Dict[str, Any]:
        """
        Put a forwarding route, by name or index, in maintenance or back in
        service, now and without a reload; a named route stays so across
        reloads.

        @return: the route's state.
        @raise KeyError: no such route, or one that does not forward.
        """
        routes = self.config.routes
        route = find_route(routes, self.runtime.switches, key)
        switch = self.runtime.switches[route.index]
        if switch.on != on:
            switch.on = on
            self.log.info(
                "route {route} {state}",
                route=route.name or "routes[%d]" % (route.index,),
                state="in maintenance" if on else "back in service",
            )
        return route_states(routes, self.runtime.switches)[route.index]

    def snapshot(self) -> Snapshot:
        return self.metrics.snapshot()

    def recent(self) -> Window:
        """
        The last minute of this process's requests, for the status page.
        """
        return self.window.window()

    def set_draining(self, upstream: str, key, draining: bool) -> Dict[str, Any]:
        """
        Drain or enable a backend of the current runtime.  Drains made this
        way outlast reloads, for as long as the backend stays configured.

        @raise KeyError: no such upstream or server.
        """
        balancer = self.runtime.balancers.get(upstream)
        if balancer is None:
            raise KeyError("no upstream named %s" % (upstream,))
        backend = balancer.backend(key)
        drained = (upstream, backend.server.url)
        if draining:
            balancer.drain(key)
            self._drained.add(drained)
        else:
            balancer.enable(key)
            self._drained.discard(drained)
        return balancer.state()["backends"][balancer.backends.index(backend)]

    def purge_cache(self, cache: Optional[str], url: Optional[str], prefix: Optional[str]) -> int:
        """
        Forget stored responses: those of C{url}, or of every URL starting
        with C{prefix}, in the cache named C{cache} (every cache when
        L{None}).

        @return: how many responses were forgotten.
        @raise KeyError: no such cache.
        @raise ValueError: the URL or prefix is not an absolute http(s) URL.
        """
        caches = self.runtime.caches
        if cache is not None:
            if cache not in caches:
                raise KeyError("no cache named %s" % (cache,))
            caches = {cache: caches[cache]}
        return sum(
            each.purge(url) if url is not None else each.purge_prefix(prefix)
            for each in caches.values()
        )

    def _redrain(self, runtime: Runtime) -> None:
        for upstream, url in list(self._drained):
            balancer = runtime.balancers.get(upstream)
            if balancer is not None and any(
                backend.server.url == url for backend in balancer.backends
            ):
                balancer.drain(url)
            else:
                self._drained.discard((upstream, url))

    @property
    def ports(self) -> List:
        """
        The listening ports, in listener order (tests read their numbers).
        """
        return list(self._ports.values())

    # Stopping ----------------------------------------------------------------

    def stopService(self) -> Deferred:
        """
        Stop gracefully: stop listening, close idle client connections,
        let the requests in flight finish for up to C{[server]
        shutdown_timeout}, then close the connections still open.

        @return: a L{Deferred} that fires when every connection is closed.
        """
        super().stopService()
        stopped = self._stopListening()
        sites = []
        for runtime in [self.runtime] + self._retired:
            if runtime is not None:
                sites.extend(runtime.sites.values())
        d = _close_connections(
            sites, self._reactor, self.config.server.shutdown_timeout
        )
        d.addCallback(lambda _: stopped)
        d.addCallback(self._closed)
        return d

    def _closed(self, _) -> Deferred:
        if self.runtime is not None:
            self.runtime.last_of_tracing = True
        closing = [
            runtime.close()
            for runtime in [self.runtime] + self._retired
            if runtime is not None
        ]
        if self.runtime is not None:
            closing.extend(client.close() for client in self.runtime.redis.values())
        self._retired = []
        self.access_log.stop()
        return DeferredList(closing)


#: Seconds between checks, during a graceful shutdown, of whether every
#: connection closed.
SHUTDOWN_CHECK = 0.1


def _close_connections(sites, clock, timeout: float) -> Deferred:
    """
    Close the client connections of C{sites} as they become idle, and the
    rest after C{timeout} seconds.

    @return: a L{Deferred} that fires once they are all closed (at once
        when none is busy).
    """
    done: Deferred = Deferred()
    deadline = clock.seconds() + timeout

    def check() -> None:
        busy = sum(site.closeIdleConnections() for site in sites)
        if not busy:
            finish()
        elif clock.seconds() >= deadline:
            log.warn(
                "shutdown: {busy} connections still busy after "
                "shutdown_timeout; closing them",
                busy=busy,
            )
            for site in sites:
                site.abortConnections()
            finish()

    def finish() -> None:
        if checker.running:
            checker.stop()
        if not done.called:
            done.callback(None)

    checker = LoopingCall(check)
    checker.clock = clock
    checker.start(SHUTDOWN_CHECK, now=True)
    return done
