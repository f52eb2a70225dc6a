"""
The in-memory store, and the purge API of a shared cache.
"""

from __future__ import annotations

import os

import attr
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from txrevproxy.cache.disk import DiskStore
from txrevproxy.cache.policy import Timing
from txrevproxy.cache.shared import SharedCache, build_caches
from txrevproxy.cache.store import OVERHEAD, MemoryStore, StoredResponse
from txrevproxy.config.model import CacheSettings
from txrevproxy.interfaces import ICacheStore

from ..support.stored_responses import response


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


def stored_on(store, key: bytes, body: bytes) -> StoredResponse:
    writer = store.writer()
    writer.write(body[:3])
    writer.write(body[3:])
    stored = attr.evolve(response(key), body=writer.close())
    store.put(stored)
    return stored


def test_disk_store_keeps_bodies_in_files_and_removes_them(tmp_path):
    directory = str(tmp_path / "bodies")
    store = DiskStore(directory, 10000)
    verifyObject(ICacheStore, store)
    first = stored_on(store, b"https://h/1", b"first body")
    with first.body.open() as file:
        assert file.read() == b"first body"
    assert len(first.body) == 10
    second = stored_on(store, b"https://h/2", b"second")
    assert len(os.listdir(directory)) == 2
    # Replaced, purged: the file goes.
    stored_on(store, b"https://h/1", b"again")
    assert not os.path.exists(first.body.path)
    store.remove(b"https://h/2")
    assert not os.path.exists(second.body.path)
    assert len(os.listdir(directory)) == 1


def test_disk_store_evicts_files_too(tmp_path):
    directory = str(tmp_path)
    each = response(b"https://h/1", b"").size + 100
    store = DiskStore(directory, 2 * each + 10)
    for number in range(5):
        stored_on(store, b"https://h/%d" % (number,), b"x" * 100)
    assert len(os.listdir(directory)) == 2
    assert store.size <= store.max_size


def test_discarded_body_leaves_no_file(tmp_path):
    store = DiskStore(str(tmp_path), 10000)
    writer = store.writer()
    writer.write(b"part")
    assert writer.received() is None
    writer.discard()
    assert os.listdir(str(tmp_path)) == []


def test_a_new_disk_store_empties_its_directory_of_bodies_only(tmp_path):
    store = DiskStore(str(tmp_path), 10000)
    stored_on(store, b"https://h/1", b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    DiskStore(str(tmp_path), 10000).writer().discard()
    assert os.listdir(str(tmp_path)) == ["keep.txt"]


def test_making_a_disk_store_touches_no_file(tmp_path):
    DiskStore(str(tmp_path / "later"), 10000)
    assert os.listdir(str(tmp_path)) == []


def test_a_reload_to_another_directory_makes_a_new_store(tmp_path):
    clock = Clock()
    disk = CacheSettings("big", store="disk", path=str(tmp_path / "a"))
    first = build_caches({"big": disk}, clock, {})
    same = build_caches({"big": disk}, clock, first)
    moved = build_caches({"big": attr.evolve(disk, path=str(tmp_path / "b"))}, clock, same)
    assert same["big"].store is first["big"].store
    assert moved["big"].store is not first["big"].store
    assert isinstance(moved["big"].store, DiskStore)


def test_each_worker_keeps_its_disk_store_apart(tmp_path):
    """
    With C{[server] workers}, each worker's disk store lives in a
    directory of its own under C{path}, so that one worker's first write,
    which empties its directory of bodies it does not know, leaves the
    other workers' files alone; a reload keeps each worker's store.
    """
    clock = Clock()
    disk = CacheSettings("big", store="disk", path=str(tmp_path))
    zero = build_caches({"big": disk}, clock, {}, worker=0)
    stored = stored_on(zero["big"].store, b"https://h/1", b"worker zero's")
    one = build_caches({"big": disk}, clock, {}, worker=1)
    stored_on(one["big"].store, b"https://h/1", b"worker one's")
    assert os.path.dirname(stored.body.path) == str(tmp_path / "worker-0")
    with stored.body.open() as file:
        assert file.read() == b"worker zero's"
    assert sorted(os.listdir(str(tmp_path))) == ["worker-0", "worker-1"]
    assert build_caches({"big": disk}, clock, zero, worker=0)["big"].store is zero["big"].store
