"""
One configured shared cache (a C{[caches.NAME]} table) as the runtime
holds it: its store, the backend requests in flight for it (for request
coalescing), its counters (a L{CacheStats} the process keeps across
reloads), and the purge API; with Redis, the shared second tier behind
its memory store and the broadcast of its removals.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import urljoin, urlsplit

import attr
from twisted.internet.defer import Deferred

from ..config.model import CacheSettings
from ..http.target import request_host
from ..interfaces import ICacheStore
from ..observe.metrics import CacheStats, Metrics
from ..plugins import cache_store_types
from . import partial, policy
from .broadcast import INVALIDATION, PREFIX, PURGE, Broadcast
from .fetch import Fetch
from .redis_tier import RedisTier, shared_lifetime
from .store import MemoryStore, StoredResponse
from .targeted import Targets

Header = Tuple[bytes, bytes]


def url_key(scheme: bytes, host: bytes, target: bytes) -> bytes:
    """
    The primary cache key of a request: its URL without the port (the
    listeners of one proxy share the routes), C{b"https://host/p?q"}.
    """
    return scheme + b"://" + host + target


def request_key(request) -> bytes:
    return url_key(request.site.scheme, request_host(request), request.uri)


def _key_of_url(url: str) -> Optional[bytes]:
    """
    The primary key of an absolute http(s) URL, or L{None}.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return url_key(
        parts.scheme.encode("ascii"),
        parts.hostname.rstrip(".").encode("idna"),
        target.encode("utf-8"),
    )


class SharedCache:
    """
    A shared cache: see the module docstring.

    @ivar settings: its L{CacheSettings}.
    @ivar store: its L{ICacheStore}, which a reload hands over.
    @ivar clock: the time source of ages.
    @ivar fetches: the backend requests in flight that requests for the
        same key may wait for, by primary key.
    @ivar range_fetches: the range requests in flight whose answers are
        to be stored, by primary key (nothing waits for them).
    @ivar metrics: its L{CacheStats}, which the request path counts in.
    @ivar targets: its L{Targets}, the targeted cache-control fields it
        obeys (RFC 9213).
    @ivar shared: its L{RedisTier} behind C{store} (C{store =
        "redis:NAME"}), or L{None}.
    @ivar broadcast: the L{Broadcast} its removals are told to the other
        processes through, or L{None}.
    """

    def __init__(
        self,
        settings: CacheSettings,
        store: ICacheStore,
        clock,
        metrics: Optional[CacheStats] = None,
        shared: Optional[RedisTier] = None,
        broadcast: Optional[Broadcast] = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.fetches: Dict[bytes, Fetch] = {}
        self.range_fetches: Dict[bytes, Set[Fetch]] = {}
        self.metrics = CacheStats() if metrics is None else metrics
        self.targets = Targets.of(settings)
        self.shared = shared
        self.broadcast = broadcast
        self._filling: Dict[bytes, _Filling] = {}

    def filling(self, key: bytes) -> Optional[Deferred]:
        """
        On a miss of the memory store, what the Redis store has for C{key}
        is put into memory before the lookup: a L{Deferred} firing when
        it is (one Redis call, whatever the requests waiting for it).

        @return: L{None} when the lookup need not wait: no Redis store,
            the memory has the key, or a backend request for it is in
            flight (its answer will do).
        """
        if self.shared is None or key in self.fetches or self.store.variants(key):
            return None
        waiting: Deferred = Deferred()
        filling = self._filling.get(key)
        if filling is not None:
            filling.waiting.append(waiting)
            return waiting
        filling = self._filling[key] = _Filling([waiting])
        # Last: a client whose circuit is open answers at once.
        self.shared.variants(key).addCallback(self._filled, key, filling)
        return waiting

    def _filled(self, responses: List[StoredResponse], key: bytes, filling: "_Filling") -> None:
        if self._filling.get(key) is filling:
            del self._filling[key]
        if filling.wanted:
            present = {stored.variant for stored in self.store.variants(key)}
            for response in reversed(responses):
                if response.variant not in present:
                    self.store.put(response)
        for waiting in filling.waiting:
            waiting.callback(None)

    def select(
        self, key: bytes, request_headers: List[Header]
    ) -> Tuple[Optional[StoredResponse], bool]:
        """
        The stored response that matches a request's Vary values (RFC 9111
        section 4.1), the most recent one when several do.

        @return: the response or L{None}, and whether responses were
            stored for the key but none matched (a "vary miss").
        """
        variants = self.store.variants(key)
        for stored in variants:
            if stored.vary_values == policy.vary_values(
                stored.vary_fields, request_headers
            ):
                return stored, False
        return None, bool(variants)

    def keep(self, response: StoredResponse) -> None:
        """
        Store a response the backend sent.  A piece of a representation
        (a 206) is combined with what is stored for its key and Vary
        values (RFC 9111 section 3.4, see
        L{txrevproxy.cache.partial.combined}); anything else replaces it.
        """
        if response.status == 206:
            old = None
            for stored in self.store.variants(response.key):
                if stored.variant == response.variant:
                    old = stored
                    break
            response = partial.combined(old, response, self.settings.max_object_size)
        self.store.put(response)
        self.metrics.stores += 1
        if self.shared is not None:
            lifetime = shared_lifetime(
                response, self.targets, self.settings.default_ttl, self.clock.seconds()
            )
            self.shared.put(response, lifetime)

    def invalidate(self, key: bytes, locations: List[bytes]) -> None:
        """
        Forget what is stored for a target an unsafe request changed, and
        for the same-origin URIs its response's Location and
        Content-Location name (RFC 9111 section 4.4).
        """
        keys = [key]
        base = key.decode("latin-1")
        origin = urlsplit(base)[:2]
        for location in locations:
            url = urljoin(base, location.decode("latin-1"))
            if urlsplit(url)[:2] == origin:
                other = _key_of_url(url)
                if other is not None:
                    keys.append(other)
        self.metrics.invalidated += sum(self._remove(each) for each in keys)
        self._tell(INVALIDATION, keys)

    def purge(self, url: str) -> int:
        """
        Forget every stored response for one URL (all its Vary variants);
        a response being fetched for it meanwhile is not stored.

        @param url: an absolute C{http} or C{https} URL; its port is
            ignored, its scheme and query are not.
        @return: how many responses were forgotten.
        @raise ValueError: when C{url} is not such a URL.
        """
        key = _key_of_url(url)
        if key is None:
            raise ValueError("not an absolute http(s) URL: %r" % (url,))
        removed = self._remove(key)
        self.metrics.purged += removed
        self._tell(PURGE, [key])
        return removed

    def _tell(self, kind: str, keys: List[bytes]) -> None:
        """
        A removal made here reaches the Redis store and, through the
        broadcast, the other processes' stores.
        """
        if self.shared is not None:
            if kind == PREFIX:
                self.shared.remove_prefix(keys[0])
            else:
                self.shared.remove(keys)
        if self.broadcast is not None:
            self.broadcast.send(kind, keys)

    def removed_elsewhere(self, kind: str, keys: Tuple[bytes, ...]) -> None:
        """
        Apply a removal another process made (and told the Redis store
        of already), counted as its kind is; see L{BroadcastListener}.
        """
        if kind == PREFIX:
            self.metrics.purged += self._remove_prefix(keys[0])
            return
        removed = sum(self._remove(key) for key in keys)
        if kind == PURGE:
            self.metrics.purged += removed
        else:
            self.metrics.invalidated += removed

    def _remove(self, key: bytes) -> int:
        """
        Forget what is stored for C{key}, and keep a response in flight
        for it from being stored.
        """
        self._forget_pending(key)
        return self.store.remove(key)

    def _forget_pending(self, key: bytes) -> None:
        """
        Keep what is on its way for C{key} (a backend's answer, what the
        Redis store had) from being stored.
        """
        for fetch in self.fetching(key):
            fetch.forget()
        filling = self._filling.get(key)
        if filling is not None:
            filling.wanted = False

    def fetching(self, key: bytes) -> List[Fetch]:
        """
        The fetches in flight for C{key} whose responses would be stored
        (one revalidation at a time is enough).
        """
        fetches = list(self.range_fetches.get(key, ()))
        fetch = self.fetches.get(key)
        if fetch is not None:
            fetches.append(fetch)
        return fetches

    def purge_prefix(self, prefix: str) -> int:
        """
        Forget every stored response whose URL starts with C{prefix}
        (C{"https://shop.example.test/products/"}), as for L{purge}.
        """
        key = _key_of_url(prefix)
        if key is None:
            raise ValueError("not an absolute http(s) URL: %r" % (prefix,))
        if not urlsplit(prefix).path:
            key = key[:-1]
        removed = self._remove_prefix(key)
        self.metrics.purged += removed
        self._tell(PREFIX, [key])
        return removed

    def _remove_prefix(self, key: bytes) -> int:
        """
        Forget what is stored for the keys starting with C{key}, and keep
        what is on its way for them from being stored.
        """
        for pending in set(self.fetches) | set(self.range_fetches) | set(self._filling):
            if pending.startswith(key):
                self._forget_pending(pending)
        return self.store.remove_prefix(key)


@attr.s
class _Filling:
    """
    A lookup of the Redis store in flight for one key: the lookups
    waiting for it, and whether its answer is still wanted (a removal
    meanwhile makes it not).
    """

    waiting: List[Deferred] = attr.ib(factory=list)
    wanted: bool = attr.ib(default=True)


def make_store(settings: CacheSettings, clock) -> ICacheStore:
    """
    The store a C{[caches.NAME]} table asks for, made by the installed
    L{txrevproxy.interfaces.ICacheStoreType} its C{store} names; for a
    Redis store, the memory store in front of it.
    """
    if settings.redis_store is not None:
        return MemoryStore(settings.max_size)
    return cache_store_types()[settings.store].configure(settings, clock)


def build_caches(
    settings: Mapping[str, CacheSettings],
    clock,
    previous: Mapping[str, SharedCache],
    metrics: Optional[Metrics] = None,
    worker: Optional[int] = None,
    redis: Mapping[str, Any] = {},
) -> Dict[str, SharedCache]:
    """
    The caches of a configuration.  A cache of the same name, kind of
    store and directory in the configuration being replaced keeps that
    store (with the
    new size bound): a reload does not empty the cache.  Each counts in
    the L{CacheStats} of its name in C{metrics} (a new L{Metrics} when not
    given), which outlive reloads as the process's metrics do.

    @param worker: the index of this worker process, with C{[server]
        workers}: a store with a C{path} then keeps its files in the
        C{worker-N} directory under it, since each worker has a store (and
        an index of its files) of its own, and a store removes the files
        it does not know of.
    @param redis: the clients of the C{[redis.NAME]} tables, by name, for
        the caches with a Redis store or broadcast.
    """
    if metrics is None:
        metrics = Metrics()
    caches = {}
    for name, table in settings.items():
        if worker is not None and table.path is not None:
            table = attr.evolve(table, path=os.path.join(table.path, "worker-%d" % (worker,)))
        old = previous.get(name)
        if old is not None and (old.settings.store, old.settings.path) == (
            table.store,
            table.path,
        ):
            store = old.store
            store.max_size = table.max_size
        else:
            store = make_store(table, clock)
        stats = metrics.cache(name)
        shared = broadcast = None
        if table.redis_store is not None:
            shared = RedisTier(redis[table.redis_store], name, table.redis_max_object_size, stats)
        if table.broadcast_store is not None:
            broadcast = Broadcast(redis[table.broadcast_store], name, stats)
        caches[name] = SharedCache(table, store, clock, stats, shared, broadcast)
    return caches
