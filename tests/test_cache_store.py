"""
The in-memory store, and the purge API of a shared cache.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from txrevproxy.cache.policy import Timing
from txrevproxy.cache.shared import SharedCache, build_caches
from txrevproxy.cache.store import OVERHEAD, MemoryStore, StoredResponse
from txrevproxy.config.model import CacheSettings
from txrevproxy.interfaces import ICacheStore


def response(key: bytes, body: bytes = b"x" * 100, vary=((), ())) -> StoredResponse:
    return StoredResponse(
        key=key,
        vary_fields=vary[0],
        vary_values=vary[1],
        status=200,
        reason=b"OK",
        headers=(),
        body=body,
        timing=Timing(0, 0),
    )


def test_memory_store_provides_the_interface():
    verifyObject(ICacheStore, MemoryStore(1000))


def test_variants_are_kept_per_vary_values_and_replaced():
    store = MemoryStore(10000)
    gzip = response(b"k", vary=((b"accept-encoding",), (b"gzip",)))
    plain = response(b"k", vary=((b"accept-encoding",), (b"",)))
    store.put(gzip)
    store.put(plain)
    assert store.variants(b"k") == [plain, gzip]
    newer = response(b"k", b"new", vary=((b"accept-encoding",), (b"gzip",)))
    store.put(newer)
    assert store.variants(b"k") == [newer, plain]
    assert store.size == newer.size + plain.size


def test_least_recently_used_goes_first():
    each = response(b"http://h/1").size
    store = MemoryStore(3 * each + 10)
    for number in (1, 2, 3):
        store.put(response(b"http://h/%d" % (number,)))
    store.variants(b"http://h/1")
    store.put(response(b"http://h/4"))
    assert list(store.keys()) == [b"http://h/3", b"http://h/1", b"http://h/4"]
    assert store.size <= store.max_size


def test_size_counts_fields_and_overhead():
    stored = StoredResponse(b"k", (), (), 200, b"OK", ((b"A", b"bc"),), b"body", Timing(0, 0))
    assert stored.size == OVERHEAD + 1 + 4 + 3


def cache() -> SharedCache:
    return SharedCache(CacheSettings("pages"), MemoryStore(100000), Clock())


def test_purge_by_url_ignores_the_port():
    shared = cache()
    shared.store.put(response(b"https://shop.test/a?x=1"))
    shared.store.put(response(b"https://shop.test/a"))
    assert shared.purge("https://SHOP.test:8443/a?x=1") == 1
    assert list(shared.store.keys()) == [b"https://shop.test/a"]


def test_purge_by_prefix():
    shared = cache()
    for key in (b"https://shop.test/products/1", b"https://shop.test/products/2", b"https://shop.test/cart"):
        shared.store.put(response(key))
    assert shared.purge_prefix("https://shop.test/products/") == 2
    assert list(shared.store.keys()) == [b"https://shop.test/cart"]
    assert shared.purge_prefix("https://shop.test") == 1


def test_purge_refuses_what_is_not_a_url():
    shared = cache()
    for bad in ("/products/", "ftp://shop.test/"):
        try:
            shared.purge(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)


def test_invalidation_follows_same_origin_locations():
    shared = cache()
    for key in (b"https://shop.test/cart", b"https://shop.test/cart/1", b"https://other.test/x"):
        shared.store.put(response(key))
    shared.invalidate(b"https://shop.test/cart", [b"/cart/1", b"https://other.test/x"])
    assert list(shared.store.keys()) == [b"https://other.test/x"]


def test_a_reload_keeps_the_store():
    clock = Clock()
    first = build_caches({"pages": CacheSettings("pages")}, clock, {})
    first["pages"].store.put(response(b"https://shop.test/"))
    second = build_caches(
        {"pages": CacheSettings("pages", max_size=1 << 20), "other": CacheSettings("other")},
        clock,
        first,
    )
    assert second["pages"].store is first["pages"].store
    assert second["pages"].store.max_size == 1 << 20
    assert list(second["other"].store.keys()) == []
