"""
Prometheus metrics, named C{txrevproxy_*}.

The hot path pays for a request with a few integer additions: the objects
it adds to (L{RouteStats}, L{ListenerStats}, L{UpstreamStats},
L{CacheStats}) are made on first use, once per listener, route, upstream
and cache (so that a route no request took has no series), and kept
across reloads, so counters never restart.  Nothing is locked, as
everything runs in the reactor thread.  What the balancers already know
(in-flight requests, health, ejections, queue, pool connections), what
the cache stores hold, the certificates served and the process's own
figures (C{process_*}) are read only when the metrics are scraped.

A scrape turns all of it into a L{Snapshot}: plain data that sums across
processes, which is how the parent of several workers serves the total of
its workers (see L{txrevproxy.app.workers}); C{prometheus_client} then only
renders families built from the snapshot (L{render}).  Its own
multiprocess mode would have every increment write to a memory-mapped
file, which costs more per request than the whole of this module.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

PREFIX = "txrevproxy_"

#: Upper bounds, in seconds, of the duration histograms' buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Every family: its type, help text and label names.
FAMILIES: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "requests": (
        "counter",
        "Requests answered, by listener, route, upstream and status class.",
        ("listener", "route", "upstream", "status"),
    ),
    "request_duration_seconds": (
        "histogram",
        "Seconds from a request's head to the end of its response.",
        ("listener", "route"),
    ),
    "upstream_response_seconds": (
        "histogram",
        "Seconds from choosing a backend to its response head.",
        ("upstream",),
    ),
    "received_bytes": (
        "counter",
        "Request body bytes received from clients.",
        ("listener",),
    ),
    "sent_bytes": ("counter", "Response body bytes sent to clients.", ("listener",)),
    "client_connections": (
        "gauge",
        "Open client connections.",
        ("listener",),
    ),
    "tls_handshakes": (
        "counter",
        "Completed TLS handshakes, by protocol version.",
        ("listener", "version"),
    ),
    "backend_connections_active": (
        "gauge",
        "Backend connections carrying a request (or being opened).",
        ("upstream", "backend"),
    ),
    "backend_connections_idle": (
        "gauge",
        "Idle keep-alive backend connections in the pool.",
        ("upstream", "backend"),
    ),
    "backend_in_flight": (
        "gauge",
        "Requests in progress on a backend.",
        ("upstream", "backend"),
    ),
    "backend_healthy": (
        "gauge",
        "1 when a backend passes its health checks and is not ejected.",
        ("upstream", "backend"),
    ),
    "ejections": (
        "counter",
        "Backends ejected by outlier detection.",
        ("upstream", "backend"),
    ),
    "retries": ("counter", "Requests tried again on another backend.", ("upstream",)),
    "queue_length": (
        "gauge",
        "Requests waiting for a backend below its max_connections.",
        ("upstream",),
    ),
    "queue_timeouts": (
        "counter",
        "Requests answered 503 after waiting queue_timeout.",
        ("upstream",),
    ),
    "timeouts": (
        "counter",
        "Requests ended by a timeout, by upstream and kind (connect, "
        "response, read, send, total).",
        ("upstream", "kind"),
    ),
    "mirror_requests": (
        "counter",
        "Copies of requests sent to a route's mirror, by route, mirror "
        "upstream and result (answered, failed, timeout, no_backend, "
        "too_large, abandoned).",
        ("route", "upstream", "result"),
    ),
    "store_errors": (
        "counter",
        "Requests a filter decided without its shared store (Redis down, "
        "slow or failing), by store and filter.",
        ("store", "filter"),
    ),
    "reloads": (
        "counter",
        "Configuration reloads, by outcome (success or failure).",
        ("outcome",),
    ),
    "cache_lookups": (
        "counter",
        "Requests a cache took, by result as Cache-Status tells the client: "
        "hit, the fwd reason (uri-miss, vary-miss, partial, stale, request, "
        "method, miss), or collapsed.",
        ("cache", "result"),
    ),
    "cache_stale_served": (
        "counter",
        "Answers from a stale stored response (max-stale, "
        "stale-while-revalidate, stale-if-error).",
        ("cache",),
    ),
    "cache_revalidations": (
        "counter",
        "Conditional requests sent to revalidate a stored response.",
        ("cache",),
    ),
    "cache_revalidated": (
        "counter",
        "Revalidations answered 304: the stored response was refreshed.",
        ("cache",),
    ),
    "cache_stores": (
        "counter",
        "Responses put into the store (new ones, and ones a 304 refreshed).",
        ("cache",),
    ),
    "cache_shared_fills": (
        "counter",
        "Responses a cache with a Redis store found there on a miss of its "
        "memory, by cache.",
        ("cache",),
    ),
    "cache_shared_errors": (
        "counter",
        "Calls to a cache's Redis store or broadcast that failed (Redis "
        "down, slow or failing): lookups answered as misses, writes, "
        "deletions and messages lost, by cache.",
        ("cache",),
    ),
    "cache_stored_bytes": (
        "counter",
        "Body bytes of the new responses put into the store.",
        ("cache",),
    ),
    "cache_served_bytes": (
        "counter",
        "Body bytes of the answers made from stored responses.",
        ("cache",),
    ),
    "cache_evictions": (
        "counter",
        "Stored responses removed, by reason: size (least recently used, "
        "for room), purge (the admin API), invalidation (an unsafe request).",
        ("cache", "reason"),
    ),
    "cache_size_bytes": (
        "gauge",
        "Bytes the store holds now (bodies, fields and overhead).",
        ("cache",),
    ),
    "cache_entries": ("gauge", "Responses the store holds now.", ("cache",)),
    "certificate_expiry_timestamp_seconds": (
        "gauge",
        "When a served certificate expires (its notAfter), as a Unix time.",
        ("tls", "names", "certificate"),
    ),
}

#: The families of C{prometheus_client}'s L{ProcessCollector} (Linux
#: only), without our prefix as every Prometheus client has them: type
#: and help text.
PROCESS_FAMILIES: Dict[str, Tuple[str, str]] = {
    "process_cpu_seconds": ("counter", "Total user and system CPU time spent in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_start_time_seconds": (
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
}

#: Families whose value is the same fact in every process (the supervisor
#: of several workers takes the least, not the sum).
LEAST_OF_PROCESSES = frozenset(["certificate_expiry_timestamp_seconds"])

#: The results of L{CacheStats.lookups}: the Cache-Status parameters
#: (RFC 9211) that tell a client how its request was answered.
CACHE_RESULTS = (
    b"hit",
    b"fwd=uri-miss",
    b"fwd=vary-miss",
    b"fwd=partial",
    b"fwd=stale",
    b"fwd=request",
    b"fwd=method",
    b"fwd=miss",
    b"collapsed",
)

#: The status classes, as the C{status} label shows them.
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

#: A scrape's data: for each family, each label values tuple (joined with
#: tabs, so that it is a JSON key) and its value: a number, or for a
#: histogram the bucket counts (not cumulative, the last one +Inf) then
#: the sum.  Under C{"process"}, the L{PROCESS_FAMILIES} of each process
#: by its C{worker} label (C{""}: the process that serves the scrape), each
#: a C{{family: value}}.
Snapshot = Dict[str, Dict[str, Any]]


class Histogram:
    """
    Bucket counts and a sum, for L{BUCKETS}.
    """

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.total += value

    def sample(self) -> List[float]:
        return self.counts + [self.total]


class UpstreamStats:
    """
    What the hot path counts for one upstream.
    """

    __slots__ = ("response_time",)

    def __init__(self) -> None:
        self.response_time = Histogram()


class ListenerStats:
    """
    What the hot path counts for one listener.

    @ivar connections: open client connections.
    @ivar handshakes: completed TLS handshakes by version name.
    """

    __slots__ = ("received", "sent", "connections", "handshakes")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.connections = 0
        self.handshakes: Dict[str, int] = {}

    def handshake(self, version: str) -> None:
        self.handshakes[version] = self.handshakes.get(version, 0) + 1


class RouteStats:
    """
    What the hot path counts for the requests one route took on one
    listener (route C{"none"}: those no route took).

    @ivar upstream: the route's upstream's stats, or L{None} for a route
        that answers by itself.
    """

    __slots__ = ("listener", "by_class", "duration", "upstream")

    def __init__(self, listener: ListenerStats, upstream: Optional[UpstreamStats]):
        self.listener = listener
        self.upstream = upstream
        self.by_class = [0] * len(STATUS_CLASSES)
        self.duration = Histogram()

    def record(self, status: int, duration: float, received: int, sent: int) -> None:
        """
        Count one finished request.
        """
        # Clamped with comparisons rather than min() and max(): two calls
        # less for every request.
        index = status // 100 - 1
        self.by_class[index if 0 <= index <= 4 else (0 if index < 0 else 4)] += 1
        self.duration.observe(duration)
        listener = self.listener
        listener.received += received
        listener.sent += sent


class CacheStats:
    """
    What the request path counts for one C{[caches.NAME]} table, kept
    across reloads.  What its store knows (its size, its entries, what it
    evicted for room) is read when the metrics are scraped.

    @ivar lookups: requests taken, by the Cache-Status parameter that says
        how (see L{CACHE_RESULTS}, all present from the start).
    @ivar stale: answers from a stale stored response.
    @ivar revalidations: conditional requests sent for a stored response.
    @ivar revalidated: those answered 304.
    @ivar stores: responses put into the store.
    @ivar bytes_stored: body bytes of the new responses stored.
    @ivar bytes_served: body bytes answered from stored responses.
    @ivar purged: responses the admin API purged (here or, through a
        broadcast, in another process).
    @ivar invalidated: responses unsafe requests invalidated (here or,
        through a broadcast, in another process).
    @ivar shared_fills: responses found in the Redis store.
    @ivar shared_errors: calls to the Redis store or broadcast that failed.
    @ivar evicted_before: responses evicted for room by stores a reload
        replaced, so that the count does not restart.
    """

    __slots__ = (
        "lookups",
        "stale",
        "revalidations",
        "revalidated",
        "stores",
        "bytes_stored",
        "bytes_served",
        "purged",
        "invalidated",
        "shared_fills",
        "shared_errors",
        "evicted_before",
    )

    def __init__(self) -> None:
        self.lookups: Dict[bytes, int] = dict.fromkeys(CACHE_RESULTS, 0)
        self.stale = 0
        self.revalidations = 0
        self.revalidated = 0
        self.stores = 0
        self.bytes_stored = 0
        self.bytes_served = 0
        self.purged = 0
        self.invalidated = 0
        self.shared_fills = 0
        self.shared_errors = 0
        self.evicted_before = 0


def _key(*labels: str) -> str:
    return "\t".join(labels)


class Metrics:
    """
    The metrics of one process, kept for its whole life across reloads.

    @ivar balancers: the current runtime's balancers, by upstream name,
        read at each scrape.
    """

    def __init__(self) -> None:
        self._listeners: Dict[str, ListenerStats] = {}
        self._routes: Dict[Tuple[str, str, str], RouteStats] = {}
        self._upstreams: Dict[str, UpstreamStats] = {}
        self._reloads = {"success": 0, "failure": 0}
        self._timeouts: Dict[str, int] = {}
        self._mirrored: Dict[str, int] = {}
        self._store_errors: Dict[str, int] = {}
        #: Counters of balancers retired by reloads, added to the current
        #: ones' so that they do not restart: by family, then label key.
        self._carried: Dict[str, Dict[str, int]] = {
            "ejections": {},
            "retries": {},
            "queue_timeouts": {},
        }
        self.balancers: Dict[str, Any] = {}
        self._caches: Dict[str, CacheStats] = {}
        #: The current runtime's caches (L{txrevproxy.cache.shared.SharedCache})
        #: and certificate stores (L{txrevproxy.tls.store.CertificateStore}),
        #: by name, read at each scrape.
        self.caches: Dict[str, Any] = {}
        self.certificates: Dict[str, Any] = {}
        self._process = ProcessCollector(registry=None)

    def cache(self, name: str) -> CacheStats:
        """
        The stats of the cache named C{name}, made on first use; a cache
        resolves them once, when it is built.
        """
        stats = self._caches.get(name)
        if stats is None:
            stats = self._caches[name] = CacheStats()
        return stats

    def use_caches(self, caches: Dict[str, Any]) -> None:
        """
        Read C{caches} (a runtime's, by name) from now on; a store they no
        longer use leaves its count of evictions behind.
        """
        for name, cache in self.caches.items():
            kept = caches.get(name)
            if kept is None or kept.store is not cache.store:
                self.cache(name).evicted_before += cache.store.evicted
        self.caches = caches

    def listener(self, name: str) -> ListenerStats:
        stats = self._listeners.get(name)
        if stats is None:
            stats = self._listeners[name] = ListenerStats()
        return stats

    def upstream(self, name: str) -> UpstreamStats:
        stats = self._upstreams.get(name)
        if stats is None:
            stats = self._upstreams[name] = UpstreamStats()
        return stats

    def route(self, listener: str, route: str, upstream: Optional[str]) -> RouteStats:
        """
        The stats of a route on a listener, made on first use; C{route} is
        its label (its name, or its position in the file as a string), or
        C{"none"}.
        """
        key = (listener, route, upstream or "")
        stats = self._routes.get(key)
        if stats is None:
            stats = self._routes[key] = RouteStats(
                self.listener(listener),
                None if upstream is None else self.upstream(upstream),
            )
        return stats

    def timed_out(self, upstream: Optional[str], kind: str) -> None:
        """
        Count a request a timeout of C{kind} ended.
        """
        key = _key(upstream or "", kind)
        self._timeouts[key] = self._timeouts.get(key, 0) + 1

    def mirrored(self, route: str, upstream: str, result: str) -> None:
        """
        Count a copy of a request sent to a route's mirror, by how it
        ended (see L{txrevproxy.forward.mirror}).
        """
        key = _key(route, upstream, result)
        self._mirrored[key] = self._mirrored.get(key, 0) + 1
    def store_errors(self, store: str, filter: str) -> Callable[[], None]:
        """
        What a filter calls for each request it decides without its shared
        C{store} (a C{[redis.NAME]} table's name), which failed.
        """
        key = _key(store, filter)
        counts = self._store_errors
        counts.setdefault(key, 0)

        def count() -> None:
            counts[key] += 1

        return count

    def reloaded(self, success: bool) -> None:
        self._reloads["success" if success else "failure"] += 1

    def retire(self, balancers: Dict[str, Any]) -> None:
        """
        Keep the counters of balancers a reload replaces; those of a
        backend are forgotten at the first scrape that finds it gone (see
        L{snapshot}).
        """
        for family, values in _balancer_counters(balancers).items():
            carried = self._carried[family]
            for key, value in values.items():
                carried[key] = carried.get(key, 0) + value

    def request_totals(self) -> Dict[str, Dict[str, List[int]]]:
        """
        What the requests so far add up to, read every second by
        L{txrevproxy.observe.window.MinuteWindow}: under C{"routes"} by
        route label (every listener's together) and under C{"upstreams"}
        by upstream name, the requests, those answered 5xx, then the
        latency bucket counts (a route's whole request, an upstream's
        response head: L{RouteStats.duration},
        L{UpstreamStats.response_time}).
        """
        routes: Dict[str, List[int]] = {}
        upstreams: Dict[str, List[int]] = {}
        for (_, route, upstream), stats in self._routes.items():
            requests, errors = sum(stats.by_class), stats.by_class[4]
            _add(routes, route, [requests, errors] + stats.duration.counts)
            if upstream:
                counts = stats.upstream.response_time.counts
                total = upstreams.setdefault(upstream, [0, 0] + counts)
                total[0] += requests
                total[1] += errors
        return {"routes": routes, "upstreams": upstreams}

    def snapshot(self) -> Snapshot:
        """
        Every sample now, as plain data (see L{Snapshot}).
        """
        data: Snapshot = {name: {} for name in FAMILIES}
        for (listener, route, upstream), stats in self._routes.items():
            for status, count in zip(STATUS_CLASSES, stats.by_class):
                if count:
                    # A series appears with its first request.
                    data["requests"][_key(listener, route, upstream, status)] = count
            # A route seen with several upstreams (the sides of a split,
            # or across a reload) has one histogram.
            merge_family(
                data["request_duration_seconds"],
                {_key(listener, route): stats.duration.sample()},
            )
        for name, stats in self._upstreams.items():
            data["upstream_response_seconds"][name] = stats.response_time.sample()
        for name, listener_stats in self._listeners.items():
            data["received_bytes"][name] = listener_stats.received
            data["sent_bytes"][name] = listener_stats.sent
            data["client_connections"][name] = listener_stats.connections
            for version, count in listener_stats.handshakes.items():
                data["tls_handshakes"][_key(name, version)] = count
        for outcome, count in self._reloads.items():
            data["reloads"][outcome] = count
        data["timeouts"].update(self._timeouts)
        data["mirror_requests"].update(self._mirrored)
        current = _balancer_counters(self.balancers)
        # A backend that left (a reload dropped it, or its address left
        # the DNS) takes its series with it.
        carried = self._carried["ejections"]
        for key in set(carried).difference(current["ejections"]):
            del carried[key]
        data["store_errors"].update(self._store_errors)
        for family, values in self._carried.items():
            data[family].update(values)
        for family, values in current.items():
            merge_family(data[family], values)
        for name, balancer in self.balancers.items():
            data["queue_length"][name] = balancer.queued
            for backend in balancer.backends:
                key = _key(name, backend.server.url)
                data["backend_connections_active"][key] = backend.pool.busy_count
                data["backend_connections_idle"][key] = backend.pool.idle_count
                data["backend_in_flight"][key] = backend.in_flight
                data["backend_healthy"][key] = int(
                    backend.healthy and not backend.ejected_until
                )
        self._cache_samples(data)
        for table, store in self.certificates.items():
            for origin, names, expiry in store.expiries():
                key = _key(table, ",".join(names), origin)
                data["certificate_expiry_timestamp_seconds"][key] = expiry
        data["process"] = {
            "": {
                family.name: sample.value
                for family in self._process.collect()
                for sample in family.samples
            }
        }
        return data

    def _cache_samples(self, data: Snapshot) -> None:
        for name, stats in self._caches.items():
            for parameter, count in stats.lookups.items():
                if count:
                    result = parameter.decode("ascii").replace("fwd=", "")
                    data["cache_lookups"][_key(name, result)] = count
            data["cache_stale_served"][name] = stats.stale
            data["cache_revalidations"][name] = stats.revalidations
            data["cache_revalidated"][name] = stats.revalidated
            data["cache_stores"][name] = stats.stores
            data["cache_stored_bytes"][name] = stats.bytes_stored
            data["cache_served_bytes"][name] = stats.bytes_served
            data["cache_shared_fills"][name] = stats.shared_fills
            data["cache_shared_errors"][name] = stats.shared_errors
            evicted = stats.evicted_before
            cache = self.caches.get(name)
            if cache is not None:
                store = cache.store
                evicted += store.evicted
                data["cache_size_bytes"][name] = store.size
                data["cache_entries"][name] = store.count
            evictions = data["cache_evictions"]
            evictions[_key(name, "size")] = evicted
            evictions[_key(name, "purge")] = stats.purged
            evictions[_key(name, "invalidation")] = stats.invalidated


def _add(into: Dict[str, List[int]], key: str, values: List[int]) -> None:
    present = into.get(key)
    into[key] = values if present is None else [a + b for a, b in zip(present, values)]


def _balancer_counters(balancers: Dict[str, Any]) -> Dict[str, Dict[str, int]]:
    counters: Dict[str, Dict[str, int]] = {
        "ejections": {},
        "retries": {},
        "queue_timeouts": {},
    }
    for name, balancer in balancers.items():
        counters["retries"][name] = balancer.retried
        counters["queue_timeouts"][name] = balancer.queue_timeouts
        for backend in balancer.backends:
            counters["ejections"][_key(name, backend.server.url)] = backend.ejections
    return counters


def merge_family(into: Dict[str, Any], values: Dict[str, Any]) -> None:
    """
    Add one family's samples to another's: numbers add, histograms add
    bucket by bucket.
    """
    for key, value in values.items():
        present = into.get(key)
        if present is None:
            into[key] = list(value) if isinstance(value, list) else value
        elif isinstance(value, list):
            into[key] = [a + b for a, b in zip(present, value)]
        else:
            into[key] = present + value


def _least_family(into: Dict[str, Any], values: Dict[str, Any]) -> None:
    for key, value in values.items():
        present = into.get(key)
        into[key] = value if present is None else min(present, value)


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """
    The sum of several processes' snapshots; for the families of
    L{LEAST_OF_PROCESSES}, the least value (a certificate a reload
    replaced in one worker but not yet in another expires when the older
    one does).
    """
    total: Snapshot = {name: {} for name in FAMILIES}
    for snapshot in snapshots:
        for family, values in snapshot.items():
            if family in LEAST_OF_PROCESSES:
                _least_family(total[family], values)
            elif family in total:
                merge_family(total[family], values)
    return total


class _SnapshotCollector:
    """
    A C{prometheus_client} collector of one snapshot.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self):
        for name, (kind, documentation, labels) in FAMILIES.items():
            yield _family(
                PREFIX + name, kind, documentation, labels, self._snapshot.get(name, {})
            )
        processes = sorted(self._snapshot.get("process", {}).items())
        for name, (kind, documentation) in PROCESS_FAMILIES.items():
            family = Metric(name, documentation, kind)
            sample = name + "_total" if kind == "counter" else name
            for worker, values in processes:
                if name in values:
                    labels = {"worker": worker} if worker else {}
                    family.add_sample(sample, labels, values[name])
            yield family


def _family(
    name: str,
    kind: str,
    documentation: str,
    labels: Sequence[str],
    values: Dict[str, Any],
):
    if kind == "histogram":
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for key, sample in sorted(values.items()):
            counts, total = sample[:-1], sample[-1]
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS + (float("inf"),), counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric(key.split("\t"), buckets, total)
        return family
    family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = family_type(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key.split("\t"), value)
    return family


def render(snapshot: Snapshot) -> bytes:
    """
    A snapshot in the Prometheus text format.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


#: The content type of L{render}'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
