"""
Backends found in the DNS: the servers of an upstream's C{dns} entries
(every address of a name's A and AAAA records) and C{srv} entries (the
targets of a name's SRV records, with their ports, weights and
priorities), looked up again when the answer's TTL runs out.

The pure part turns an answer into the servers it names (L{a_servers},
L{srv_servers}) and compares two sets of servers (L{compare}); a
L{Discovery}, one per entry, asks the resolver, and hands the balancer
the backends to add and those to drain away
(L{txrevproxy.upstream.balancer.Balancer.change}).  A backend whose
address stays is kept whole: its pool, its health, its drain and its
ejection.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.logger import Logger
from twisted.names import client, dns, hosts, resolve
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure

from ..config.model import BackendServer
from .balancer import Backend, Balancer

#: The timeouts of one query, in seconds: one retry, so that a DNS
#: server that does not answer costs a few seconds, not the client's
#: default minute.
QUERY_TIMEOUT = (1, 3)

#: The largest weight a server may have (as C{weight} in the file): SRV
#: weights above it are scaled down together.
MAX_WEIGHT = 256

#: The TTL of an answer without records: it is asked again as soon as
#: C{dns_min_ttl} allows.
_NO_TTL = 0.0


@attr.s(frozen=True, auto_attribs=True)
class Answer:
    """
    What one lookup found.

    @ivar servers: the servers, in the order of the records.
    @ivar ttl: the shortest TTL of the records, in seconds.
    """

    servers: Tuple[BackendServer, ...]
    ttl: float


@attr.s(frozen=True, auto_attribs=True)
class Comparison:
    """
    How a new set of servers differs from the backends held.

    @ivar kept: the backends whose server is still named, each with the
        server as the new answer names it (its weight or priority may
        have changed).
    @ivar added: the servers newly named.
    @ivar removed: the backends no longer named.
    """

    kept: Tuple[Tuple[Backend, BackendServer], ...]
    added: Tuple[BackendServer, ...]
    removed: Tuple[Backend, ...]


def compare(held: Sequence[Backend], wanted: Sequence[BackendServer]) -> Comparison:
    """
    Compare the backends held with the servers an answer names, by URL
    (scheme, address and port): a backend is the same backend as long as
    its URL is named.
    """
    by_url: Dict[str, BackendServer] = {}
    for server in wanted:
        by_url.setdefault(server.url, server)
    held_urls = {backend.server.url for backend in held}
    return Comparison(
        kept=tuple(
            (backend, by_url[backend.server.url])
            for backend in held
            if backend.server.url in by_url
        ),
        added=tuple(server for url, server in by_url.items() if url not in held_urls),
        removed=tuple(backend for backend in held if backend.server.url not in by_url),
    )


def _address_url(scheme: str, address: str, port: int) -> str:
    host = "[%s]" % (address,) if ":" in address else address
    return "%s://%s:%d" % (scheme, host, port)


def resolved_server(
    entry: BackendServer,
    address: str,
    port: int,
    name: str,
    weight: Optional[int] = None,
    backup: Optional[bool] = None,
) -> BackendServer:
    """
    The server at one address an entry's lookup found.

    @param name: the name the address was found under (see
        L{BackendServer.resolved_from}).
    @param weight: its weight, when the records give one (SRV); else the
        entry's.
    @param backup: whether it is a backup, when the records say (SRV
        priorities); else the entry's.
    """
    return attr.evolve(
        entry,
        url=_address_url(entry.scheme, address, port),
        host=address,
        port=port,
        lookup=None,
        resolved_from=name,
        weight=entry.weight if weight is None else weight,
        backup=entry.backup if backup is None else backup,
    )


def _addresses(records: Iterable[dns.RRHeader]) -> List[Tuple[str, float]]:
    """
    The addresses of the A and AAAA records among C{records}, with
    their TTLs.
    """
    found = []
    for record in records:
        if record.type == dns.A:
            found.append((record.payload.dottedQuad(), float(record.ttl)))
        elif record.type == dns.AAAA:
            address = ipaddress.IPv6Address(record.payload.address).compressed
            found.append((address, float(record.ttl)))
    return found


def a_servers(
    entry: BackendServer, name: str, records: Iterable[dns.RRHeader]
) -> Answer:
    """
    The servers of a C{dns} entry: one per address of C{records} (the
    answers of its A and AAAA queries), at the entry's port.
    """
    found = _addresses(records)
    return Answer(
        tuple(resolved_server(entry, address, entry.port, name) for address, _ in found),
        min((ttl for _, ttl in found), default=_NO_TTL),
    )


def srv_weights(weights: Sequence[int]) -> List[int]:
    """
    SRV weights (0 to 65535) as server weights (1 to L{MAX_WEIGHT}): in
    the same proportions, scaled down when the largest is beyond
    L{MAX_WEIGHT}; a weight of 0 (RFC 2782: "very small chance") is 1.
    """
    largest = max(weights, default=0)
    scale = MAX_WEIGHT / largest if largest > MAX_WEIGHT else 1.0
    return [max(1, round(weight * scale)) for weight in weights]


def srv_servers(
    entry: BackendServer,
    records: Iterable[dns.RRHeader],
    addresses: Dict[str, List[Tuple[str, float]]],
) -> Answer:
    """
    The servers of a C{srv} entry: one per address of each SRV record's
    target, at the record's port, with its weight; the records of the
    lowest priority value are the primaries, the others are C{backup}
    servers (take requests only while no primary can).

    @param addresses: the addresses (with TTLs) of each target.
    """
    srv = [record for record in records if record.type == dns.SRV]
    if not srv:
        return Answer((), _NO_TTL)
    primary = min(record.payload.priority for record in srv)
    weights = srv_weights([record.payload.weight for record in srv])
    servers = []
    ttls = []
    for record, weight in zip(srv, weights):
        target = record.payload.target.name.decode("ascii").lower()
        ttls.append(float(record.ttl))
        for address, ttl in addresses.get(target, ()):
            ttls.append(ttl)
            servers.append(
                resolved_server(
                    entry,
                    address,
                    record.payload.port,
                    target,
                    weight=weight,
                    backup=record.payload.priority != primary,
                )
            )
    return Answer(tuple(servers), min(ttls))


def _literal(name: str) -> Optional[str]:
    """
    C{name} when it is an IP address (an SRV target written as one),
    else L{None}.
    """
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return None


def _answers(result) -> List[dns.RRHeader]:
    answers, _authority, _additional = result
    return list(answers)


def _no_records(failure: Failure) -> List[dns.RRHeader]:
    """
    A name that does not exist (NXDOMAIN) has no records; the DNS
    answered, so the lookup did not fail.
    """
    failure.trap(DNSNameError)
    return []


def _gathered(queries: List[Deferred]) -> Deferred:
    """
    The results of C{queries}, or the failure of the first that fails
    (not wrapped in a L{FirstError}, so that logs say why).
    """
    return gatherResults(queries, consumeErrors=True).addErrback(
        lambda failure: failure.value.subFailure if failure.check(FirstError) else failure
    )


def lookup_addresses(resolver, name: str) -> Deferred:
    """
    The A and AAAA records of C{name}, together.

    @return: a L{Deferred} firing with a list of records.
    """
    queries = [
        resolver.lookupAddress(name, QUERY_TIMEOUT),
        resolver.lookupIPV6Address(name, QUERY_TIMEOUT),
    ]
    for query in queries:
        query.addCallbacks(_answers, _no_records)
    return _gathered(queries).addCallback(lambda results: results[0] + results[1])


def lookup(resolver, entry: BackendServer) -> Deferred:
    """
    Look up an entry's servers.

    @param resolver: an L{twisted.internet.interfaces.IResolver}.
    @return: a L{Deferred} firing with an L{Answer}, or failing when the
        DNS could not be asked (no answer, a server failure).
    """
    name = entry.host
    if entry.lookup == "dns":
        return lookup_addresses(resolver, name).addCallback(
            lambda records: a_servers(entry, name, records)
        )
    return (
        resolver.lookupService(name, QUERY_TIMEOUT)
        .addCallbacks(_answers, _no_records)
        .addCallback(_srv_targets, resolver, entry)
    )


def _srv_targets(records: List[dns.RRHeader], resolver, entry: BackendServer) -> Deferred:
    """
    Look up the addresses of each SRV record's target (a target that is
    an IP address is its own), then make the servers.
    """
    targets = sorted(
        {
            record.payload.target.name.decode("ascii").lower()
            for record in records
            if record.type == dns.SRV
        }
    )
    found: Dict[str, List[Tuple[str, float]]] = {}
    queries = []
    for target in targets:
        literal = _literal(target)
        if literal is not None:
            found[target] = [(literal, float("inf"))]
            continue
        queries.append(
            lookup_addresses(resolver, target).addCallback(
                lambda addresses, target=target: found.__setitem__(
                    target, _addresses(addresses)
                )
            )
        )
    return _gathered(queries).addCallback(lambda _: srv_servers(entry, records, found))


def system_name_servers(path: str = "/etc/resolv.conf") -> List[Tuple[str, int]]:
    """
    The name servers of a C{resolv.conf(5)} file, in its order; with
    none (or no file), the local one, as the C library's resolver does.

    Read once per configuration (at start and at each reload), rather
    than by C{twisted.names.client.Resolver(resolv=...)}, which re-reads
    the file on a timer that would outlive a runtime a reload replaced.
    """
    servers = []
    try:
        with open(path, "rb") as conf:
            for line in conf:
                fields = line.split()
                if len(fields) > 1 and fields[0] == b"nameserver":
                    servers.append((fields[1].decode("ascii", "replace"), 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


def make_resolver(servers: Sequence[Tuple[str, int]], reactor):
    """
    The resolver of C{resolvers = [...]}: those DNS servers, asked
    directly; with none, the system's (C{/etc/hosts}, then the name
    servers of C{/etc/resolv.conf}), as
    C{twisted.names.client.createResolver} makes it, without its cache
    (the answers' TTLs are heeded here).
    """
    if servers:
        return client.Resolver(servers=list(servers), reactor=reactor)
    return resolve.ResolverChain(
        [
            hosts.Resolver(b"/etc/hosts"),
            client.Resolver(servers=system_name_servers(), reactor=reactor),
        ]
    )


def clamp(ttl: float, floor: float, ceiling: float) -> float:
    """
    The TTL of an answer within the upstream's C{dns_min_ttl} and
    C{dns_max_ttl}.
    """
    return min(max(ttl, floor), ceiling)


class Discovery(Service):
    """
    The servers of one C{dns} or C{srv} entry of an upstream, kept up to
    date in its balancer.

    It looks the entry up when started, and again when the answer's
    shortest TTL runs out (within C{dns_min_ttl} and C{dns_max_ttl}).  A
    new address becomes a new backend; an address that stays keeps its
    backend; an address that went away has its backend drained: it takes
    no new request and its pool closes when its last one is over.

    A lookup that fails (no answer, a server failure) keeps the servers
    found last and is tried again sooner, after C{dns_min_ttl}, doubling
    up to C{dns_max_ttl}.  An answer with no servers (the name is gone,
    or has no records) after one with servers keeps those for
    C{dns_max_ttl} more, as HAProxy's C{hold nx} does, so that a zone
    being edited does not empty an upstream; after that the upstream
    has no servers from this entry.

    @ivar upstream: the name of the upstream.
    @ivar entry: the C{dns} or C{srv} entry.
    @ivar held: the backends of this entry now.
    @ivar last_error: why the latest lookup failed, or L{None}.
    @param known: the servers the entry had in the runtime a reload
        replaces: they are the backends until the first lookup answers,
        so that a reload neither waits for the DNS nor forgets drains.
    """

    log = Logger()

    def __init__(
        self,
        balancer: Balancer,
        entry: BackendServer,
        resolver,
        make_backend: Callable[[BackendServer], Backend],
        clock,
        known: Sequence[BackendServer] = (),
    ) -> None:
        self._balancer = balancer
        self.entry = entry
        self.upstream = balancer.upstream.name
        self._resolver = resolver
        self._make_backend = make_backend
        self._clock = clock
        upstream = balancer.upstream
        self._floor = upstream.dns_min_ttl
        self._ceiling = upstream.dns_max_ttl
        self.held: List[Backend] = []
        self.last_error: Optional[str] = None
        self._answered = False
        self._empty_since: Optional[float] = None
        self._backoff = 0.0
        self._next = None
        self._pending: Optional[Deferred] = None
        balancer.lookups.append(self)
        if known:
            self._answered = True
            self.held = [make_backend(server) for server in known]
            balancer.change(self.held, (), ramp=False)
        else:
            balancer.awaiting += 1

    def startService(self) -> None:
        super().startService()
        self._lookup()

    def state(self) -> Dict[str, Any]:
        """
        What it found and when it asks again, as plain data for the admin
        API's C{/status}.
        """
        pending = self._next is not None and self._next.active()
        return {
            self.entry.lookup: self.entry.host,
            "servers": [backend.server.url for backend in self.held],
            "error": self.last_error,
            "next_lookup_seconds": (
                max(0.0, self._next.getTime() - self._clock.seconds()) if pending else None
            ),
        }

    def stopService(self) -> None:
        super().stopService()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._pending is not None:
            self._pending.cancel()

    def _lookup(self) -> None:
        self._next = None
        d = self._pending = lookup(self._resolver, self.entry)
        d.addCallbacks(self._found, self._failed)

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._next = self._clock.callLater(delay, self._lookup)

    def _first(self) -> None:
        """
        The first lookup is over: requests that waited for it are served,
        or answered 503 if it found nothing.
        """
        if not self._answered:
            self._answered = True
            self._balancer.looked_up()

    def _found(self, answer: Answer) -> None:
        self._pending = None
        servers = answer.servers
        if not servers:
            if not self.held:
                self._retry("no records")
                return
            if self._holding():
                return
        self._empty_since = None
        self.last_error = None
        self._backoff = 0.0
        self._apply(servers)
        self._first()
        self._schedule(clamp(answer.ttl, self._floor, self._ceiling))

    def _holding(self) -> bool:
        """
        An answer with no servers came after one with servers: keep those
        for C{dns_max_ttl}, asking again every C{dns_min_ttl}.

        @return: whether they are still kept.
        """
        now = self._clock.seconds()
        if self._empty_since is None:
            self._empty_since = now
            self.log.warn(
                "upstream {upstream}: {name} has no records now; keeping its "
                "last {count} servers for up to {hold}s",
                upstream=self.upstream,
                name=self.entry.host,
                count=len(self.held),
                hold=self._ceiling,
            )
        if now - self._empty_since < self._ceiling:
            self._schedule(self._floor)
            return True
        return False

    def _apply(self, servers: Sequence[BackendServer]) -> None:
        comparison = compare(self.held, servers)
        changed = False
        for backend, server in comparison.kept:
            if server != backend.server:
                # An SRV record's weight or priority changed.
                backend.server = server
                backend.weight = server.weight
                changed = True
        added = [self._make_backend(server) for server in comparison.added]
        if not (added or comparison.removed or changed):
            return
        if added or comparison.removed:
            self.log.info(
                "upstream {upstream}: {name}: {added} added, {removed} leaving, "
                "{kept} kept",
                upstream=self.upstream,
                name=self.entry.host,
                added=", ".join(s.url for s in comparison.added) or "none",
                removed=", ".join(b.server.url for b in comparison.removed) or "none",
                kept=len(comparison.kept),
            )
        self.held = [backend for backend, _ in comparison.kept] + added
        self._balancer.change(added, comparison.removed, ramp=self._answered)

    def _failed(self, reason: Failure) -> None:
        self._pending = None
        if self.running:
            self._retry(reason.getErrorMessage() or reason.type.__name__)

    def _retry(self, error: str) -> None:
        """
        The lookup found nothing to use: keep what is held, and try again
        after C{dns_min_ttl}, doubling up to C{dns_max_ttl}.
        """
        self.last_error = error
        self._backoff = min(self._ceiling, max(self._floor, self._backoff * 2))
        self.log.warn(
            "upstream {upstream}: looking up {name} found no servers ({error}); "
            "keeping {count}, trying again in {delay}s",
            upstream=self.upstream,
            name=self.entry.host,
            error=error,
            count=len(self.held),
            delay=self._backoff,
        )
        self._first()
        self._schedule(self._backoff)
