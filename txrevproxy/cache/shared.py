"""
One configured shared cache (a C{[caches.NAME]} table) as the runtime
holds it: its store, the backend requests in flight for it (for request
coalescing), its counters (a L{CacheStats} the process keeps across
reloads), and the purge API.
"""

from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import urljoin, urlsplit

import attr

from ..config.model import CacheSettings
from ..http.target import request_host
from ..interfaces import ICacheStore
from ..observe.metrics import CacheStats, Metrics
from ..plugins import cache_store_types
from . import partial, policy
from .fetch import Fetch
from .store import StoredResponse
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
    """

    def __init__(
        self,
        settings: CacheSettings,
        store: ICacheStore,
        clock,
        metrics: Optional[CacheStats] = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.fetches: Dict[bytes, Fetch] = {}
        self.range_fetches: Dict[bytes, Set[Fetch]] = {}
        self.metrics = CacheStats() if metrics is None else metrics
        self.targets = Targets.of(settings)

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

    def invalidate(self, key: bytes, locations: List[bytes]) -> None:
        """
        Forget what is stored for a target an unsafe request changed, and
        for the same-origin URIs its response's Location and
        Content-Location name (RFC 9111 section 4.4).
        """
        removed = self._remove(key)
        base = key.decode("latin-1")
        origin = urlsplit(base)[:2]
        for location in locations:
            url = urljoin(base, location.decode("latin-1"))
            if urlsplit(url)[:2] == origin:
                other = _key_of_url(url)
                if other is not None:
                    removed += self._remove(other)
        self.metrics.invalidated += removed

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
        return removed

    def _remove(self, key: bytes) -> int:
        """
        Forget what is stored for C{key}, and keep a response in flight
        for it from being stored.
        """
        for fetch in self.fetching(key):
            fetch.forget()
        return self.store.remove(key)

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
        for fetched in set(self.fetches) | set(self.range_fetches):
            if fetched.startswith(key):
                for fetch in self.fetching(fetched):
                    fetch.forget()
        removed = self.store.remove_prefix(key)
        self.metrics.purged += removed
        return removed


def make_store(settings: CacheSettings, clock) -> ICacheStore:
    """
    The store a C{[caches.NAME]} table asks for, made by the installed
    L{txrevproxy.interfaces.ICacheStoreType} its C{store} names.
    """
    return cache_store_types()[settings.store].configure(settings, clock)


def build_caches(
    settings: Mapping[str, CacheSettings],
    clock,
    previous: Mapping[str, SharedCache],
    metrics: Optional[Metrics] = None,
    worker: Optional[int] = None,
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
        caches[name] = SharedCache(table, store, clock, metrics.cache(name))
    return caches
