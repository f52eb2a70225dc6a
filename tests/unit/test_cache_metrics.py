"""
The metrics of a shared cache: what its stores count (entries, bytes,
evictions for room), what the cache counts (stores, purges,
invalidations), and how L{Metrics} turns them into series that outlive a
reload.
"""

from __future__ import annotations

import attr
import pytest
from twisted.internet.task import Clock

from txrevproxy.cache.disk import DiskStore
from txrevproxy.cache.shared import build_caches
from txrevproxy.cache.store import MemoryStore
from txrevproxy.config.model import CacheSettings
from txrevproxy.observe.metrics import Metrics

from ..support.stored_responses import response


def memory_store(tmp_path, max_size: int) -> MemoryStore:
    return MemoryStore(max_size)


def disk_store(tmp_path, max_size: int) -> DiskStore:
    return DiskStore(str(tmp_path / "bodies"), max_size)


def put(store, key: bytes, body: bytes = b"x" * 100, vary=((), ())):
    """
    Store a response whose body went through the store's own writer, as
    the cache stores them.
    """
    writer = store.writer()
    writer.write(body)
    stored = attr.evolve(response(key, vary=vary), body=writer.close())
    store.put(stored)
    return stored


STORES = pytest.mark.parametrize("make_store", [memory_store, disk_store])


@STORES
def test_a_store_counts_its_entries_and_bytes(tmp_path, make_store):
    store = make_store(tmp_path, 100000)
    assert (store.count, store.size, store.evicted) == (0, 0, 0)
    gzip = put(store, b"https://h/1", vary=((b"accept-encoding",), (b"gzip",)))
    plain = put(store, b"https://h/1", vary=((b"accept-encoding",), (b"",)))
    other = put(store, b"https://h/2")
    assert store.count == 3
    assert store.size == gzip.size + plain.size + other.size
    # A variant replaced is not one more, nor an eviction.
    put(store, b"https://h/2", b"new")
    assert store.count == 3
    assert store.remove(b"https://h/1") == 2
    assert (store.count, store.evicted) == (1, 0)


@STORES
def test_a_store_counts_what_it_evicts_for_room(tmp_path, make_store):
    each = response(b"https://h/1").size
    store = make_store(tmp_path, 2 * each + 10)
    for number in range(1, 5):
        put(store, b"https://h/%d" % (number,))
    assert store.evicted == 2
    assert store.count == 2
    assert store.size == 2 * each
    store.remove_prefix(b"https://h/")
    assert (store.count, store.size, store.evicted) == (0, 0, 2)


def test_the_cache_counts_stores_purges_and_invalidations():
    metrics = Metrics()
    caches = build_caches({"pages": CacheSettings("pages")}, Clock(), {}, metrics)
    metrics.use_caches(caches)
    shared = caches["pages"]
    for key in (b"https://shop.test/a", b"https://shop.test/b", b"https://shop.test/c/1"):
        shared.keep(response(key))
    shared.purge("https://shop.test/a")
    shared.purge_prefix("https://shop.test/c/")
    shared.invalidate(b"https://shop.test/b", [b"/none"])
    snapshot = metrics.snapshot()
    assert snapshot["cache_stores"] == {"pages": 3}
    assert snapshot["cache_evictions"] == {
        "pages\tsize": 0,
        "pages\tpurge": 2,
        "pages\tinvalidation": 1,
    }
    assert (snapshot["cache_entries"], snapshot["cache_size_bytes"]) == (
        {"pages": 0},
        {"pages": 0},
    )


def test_lookups_are_labelled_as_cache_status_says_and_appear_when_counted():
    metrics = Metrics()
    stats = metrics.cache("pages")
    stats.lookups[b"hit"] += 2
    stats.lookups[b"fwd=uri-miss"] += 1
    stats.lookups[b"collapsed"] += 1
    assert metrics.snapshot()["cache_lookups"] == {
        "pages\thit": 2,
        "pages\turi-miss": 1,
        "pages\tcollapsed": 1,
    }


def test_the_store_gauges_are_read_at_each_scrape():
    metrics = Metrics()
    caches = build_caches({"pages": CacheSettings("pages")}, Clock(), {}, metrics)
    metrics.use_caches(caches)
    stored = put(caches["pages"].store, b"https://shop.test/")
    snapshot = metrics.snapshot()
    assert snapshot["cache_entries"] == {"pages": 1}
    assert snapshot["cache_size_bytes"] == {"pages": stored.size}


def test_counters_outlive_a_reload_and_a_replaced_store():
    """
    A reload that keeps the store keeps its counts as they are; one that
    replaces the store (another kind of store) keeps what the old store
    evicted, and the counters the request path adds to are the same
    objects.
    """
    clock = Clock()
    metrics = Metrics()
    each = response(b"https://h/1").size
    settings = CacheSettings("pages", max_size=each + 10)
    first = build_caches({"pages": settings}, clock, {}, metrics)
    metrics.use_caches(first)
    for number in range(3):
        first["pages"].keep(response(b"https://h/%d" % (number,)))
    kept = build_caches({"pages": settings}, clock, first, metrics)
    metrics.use_caches(kept)
    assert kept["pages"].metrics is first["pages"].metrics
    assert metrics.snapshot()["cache_evictions"]["pages\tsize"] == 2
    moved = build_caches(
        {"pages": attr.evolve(settings, store="disk", path="/nonexistent")}, clock, kept, metrics
    )
    metrics.use_caches(moved)
    snapshot = metrics.snapshot()
    assert snapshot["cache_evictions"]["pages\tsize"] == 2
    assert snapshot["cache_stores"] == {"pages": 3}
    assert snapshot["cache_entries"] == {"pages": 0}
    # A cache the configuration dropped keeps its counters, not its gauges.
    metrics.use_caches({})
    snapshot = metrics.snapshot()
    assert snapshot["cache_evictions"]["pages\tsize"] == 2
    assert snapshot["cache_entries"] == {}
