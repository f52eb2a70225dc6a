"""
The schema of the C{[caches.NAME]} tables: shared HTTP caches (see
C{docs/caching.rst}).

A table's C{store} names an installed
L{txrevproxy.interfaces.ICacheStoreType}: the built-in C{"memory"} and
C{"disk"}, or a plugin's.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

from ..plugins import cache_store_types
from .model import CacheSettings
from .redis import LOCAL, store_reference
from .schema import MODEL_DEFAULT, Field, Invalid, Problem, Table, array_of
from .values import boolean, duration, file_path, header_name, one_of, size

#: The store of a table without a C{store} key.
DEFAULT_STORE = "memory"


def store_name(value: Any) -> str:
    """
    The name of an installed store type, looked up each time a
    configuration is loaded (so a plugin installed since counts); a
    problem lists them, the default first.  Or C{"redis:NAME"}, whose
    table is checked with the others' (see
    L{txrevproxy.config.load}).
    """
    if isinstance(value, str) and value.startswith("redis:"):
        store_reference(value, None)
        return value
    names = sorted(cache_store_types(), key=lambda name: (name != DEFAULT_STORE, name))
    return one_of(*names)(value)


_field_names = array_of(
    header_name, what='an array of field names such as ["cdn-cache-control"]'
)


def field_names(value: Any) -> Tuple[str, ...]:
    """
    Targeted field names (RFC 9213): tokens, each once whatever its case,
    lower-cased since field names are compared without case.
    """
    names = tuple(name.lower() for name in _field_names(value))
    for index, name in enumerate(names):
        if name in names[:index]:
            raise Invalid('lists "%s" twice' % (name,))
    return names


def _object_fits(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["max_object_size"] > arguments["max_size"]:
        yield (".max_object_size", "must not be larger than max_size")


def _removed_are_targets(arguments: Dict[str, Any]) -> Iterable[Problem]:
    for index, name in enumerate(arguments["remove_targeted"]):
        if name not in arguments["targets"]:
            yield (
                ".remove_targeted[%d]" % (index,),
                '"%s" is not in targets, so this cache never uses it' % (name,),
            )


def _path_for_disk(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The disk store needs a directory, and the memory store has none; a
    plugin's store may use C{path} or not.
    """
    if arguments["store"] == "disk" and "path" not in arguments:
        yield (".path", 'store = "disk" needs the directory of its files')
    memory = arguments["store"] == DEFAULT_STORE or arguments["store"].startswith("redis:")
    if memory and "path" in arguments:
        yield (".path", 'only meaningful with store = "disk"')


CACHE = Table(
    CacheSettings,
    {
        "store": Field(store_name, default=DEFAULT_STORE),
        "path": Field(file_path, default=MODEL_DEFAULT),
        "max_size": Field(size, default="256MiB"),
        "max_object_size": Field(size, default="8MiB"),
        "default_ttl": Field(duration, default=MODEL_DEFAULT),
        "store_set_cookie": Field(boolean, default=False),
        "targets": Field(field_names, default=["cdn-cache-control"]),
        "remove_targeted": Field(field_names, default=[]),
        "broadcast": Field(lambda value: store_reference(value, None), default=LOCAL),
        "redis_max_object_size": Field(size, default="256KiB"),
    },
    checks=(_object_fits, _path_for_disk, _removed_are_targets),
)
