"""
Cache stores as plugins: the built-in C{memory} and C{disk} stores are
installed plugins, and a third-party store, installed from a temporary
directory on the plugin path, is used by name in a C{[caches.NAME]}
table: the complete example of C{docs/caching.rst}, taken from the document
itself so that it cannot go stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from txrevproxy.app.runtime import Runtime
from txrevproxy.cache.disk import DiskStore
from txrevproxy.cache.shared import build_caches
from txrevproxy.cache.store import MemoryStore
from txrevproxy.config import load_config
from txrevproxy.config.model import CacheSettings
from txrevproxy.interfaces import ICacheStore, ICacheStoreType
from txrevproxy.plugins import cache_store_types

from ..support.configs import document, parse, problems
from ..support.doc_blocks import literal_block
from ..support.doc_examples import check_with_plugins, example_files, installed_example
from ..support.processes import proxy_modules_imported_by
from ..support.stored_responses import response


def test_importing_the_store_plugins_imports_only_the_interfaces():
    """
    twistd imports every plugin module to list its commands: the module of
    the built-in stores brings in no reactor and no proxy code.
    """
    assert proxy_modules_imported_by("twisted.plugins.txrevproxy_caches") == [
        "txrevproxy",
        "txrevproxy.interfaces",
    ]


@pytest.mark.parametrize(
    "settings, store_class",
    [
        (CacheSettings("pages", max_size=1000), MemoryStore),
        (CacheSettings("big", store="disk", path="/nonexistent/big", max_size=1000), DiskStore),
    ],
)
def test_built_in_stores_are_plugins(settings, store_class):
    types = cache_store_types()
    assert sorted(types) == ["disk", "memory"]
    kind = types[settings.store]
    assert verifyObject(IPlugin, kind)
    assert verifyObject(ICacheStoreType, kind)
    assert kind.name == settings.store
    store = kind.configure(settings, Clock())
    assert verifyObject(ICacheStore, store)
    assert type(store) is store_class
    assert store.max_size == 1000


def test_without_the_plugin_the_store_is_unknown():
    assert problems(document(extra='[caches.pages]\nstore = "fifo"')) == [
        'caches.pages.store: unknown value "fifo"; expected one of "memory", "disk"'
    ]


@pytest.fixture
def plugin_directory(tmp_path: Path):
    """
    A directory holding the example store, on the Python path and on the
    plugin path for the length of the test.
    """
    files = example_files("caching.rst")
    assert set(files) == {
        "fifo_store/__init__.py",
        "twisted/plugins/fifo_store_plugin.py",
        "setup.cfg",
    }
    modules = ["fifo_store", "twisted.plugins.fifo_store_plugin"]
    with installed_example(files, tmp_path, modules) as directory:
        yield directory


#: The cache table of docs/caching.rst that uses the example store.
FIFO = literal_block("caching.rst", "[caches.", 'store = "fifo"').strip()
CACHED = 'upstream = "app"\ncache = "pages"'


def test_a_plugin_store_is_used_by_name(plugin_directory):
    from fifo_store import FirstInFirstOut

    assert verifyObject(ICacheStoreType, cache_store_types()["fifo"])
    config = parse(document(route=CACHED, extra=FIFO))
    assert config.caches["pages"] == CacheSettings("pages", store="fifo", max_size=64 << 20)
    store = Runtime(config, MemoryReactorClock()).caches["pages"].store
    assert isinstance(store, FirstInFirstOut)
    assert verifyObject(ICacheStore, store)
    assert store.max_size == 64 << 20


def test_the_plugin_store_forgets_the_oldest_first(plugin_directory):
    """
    The example does what its document says: unlike the memory store, a
    use does not keep a response.
    """
    settings = CacheSettings("pages", store="fifo", max_size=3 * response(b"http://h/1").size)
    store = build_caches({"pages": settings}, Clock(), {})["pages"].store
    for number in (1, 2, 3):
        store.put(response(b"http://h/%d" % (number,)))
    assert store.variants(b"http://h/1")
    store.put(response(b"http://h/4"))
    assert store.variants(b"http://h/1") == []
    assert [len(store.variants(b"http://h/%d" % (n,))) for n in (2, 3, 4)] == [1, 1, 1]
    assert store.size <= store.max_size
    assert store.remove_prefix(b"http://h/") == 3
    assert store.size == 0


def test_a_reload_keeps_the_plugin_store(plugin_directory):
    clock = Clock()
    settings = CacheSettings("pages", store="fifo", max_size=1000)
    first = build_caches({"pages": settings}, clock, {})
    second = build_caches({"pages": CacheSettings("pages", store="fifo", max_size=2000)}, clock, first)
    assert second["pages"].store is first["pages"].store
    assert second["pages"].store.max_size == 2000


def test_a_plugin_store_may_have_a_path(plugin_directory, tmp_path):
    source = tmp_path / "proxy.toml"
    source.write_text(document(extra=FIFO + '\npath = "cache/pages"'))
    assert load_config(str(source)).caches["pages"].path == str(tmp_path / "cache" / "pages")


def test_an_unknown_store_names_the_installed_ones_default_first(plugin_directory):
    assert problems(document(extra='[caches.pages]\nstore = "redis"')) == [
        'caches.pages.store: unknown value "redis"; expected one of "memory", "disk", "fifo"'
    ]


def test_check_accepts_a_plugin_on_the_python_path(plugin_directory):
    result = check_with_plugins(plugin_directory, document(route=CACHED, extra=FIFO))
    assert result.returncode == 0, result.stderr
    assert b": OK: " in result.stdout, result.stdout
