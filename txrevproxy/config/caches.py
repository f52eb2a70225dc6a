"""
The schema of the C{[caches.NAME]} tables: shared HTTP caches (see
C{docs/caching.rst}).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from .model import CacheSettings
from .schema import MODEL_DEFAULT, Field, Problem, Table
from .values import boolean, duration, file_path, one_of, size


def _object_fits(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["max_object_size"] > arguments["max_size"]:
        yield (".max_object_size", "must not be larger than max_size")


def _path_for_disk(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["store"] == "disk" and "path" not in arguments:
        yield (".path", 'store = "disk" needs the directory of its files')
    if arguments["store"] != "disk" and "path" in arguments:
        yield (".path", 'only meaningful with store = "disk"')


CACHE = Table(
    CacheSettings,
    {
        "store": Field(one_of("memory", "disk"), default="memory"),
        "path": Field(file_path, default=MODEL_DEFAULT),
        "max_size": Field(size, default="256MiB"),
        "max_object_size": Field(size, default="8MiB"),
        "default_ttl": Field(duration, default=MODEL_DEFAULT),
        "store_set_cookie": Field(boolean, default=False),
    },
    checks=(_object_fits, _path_for_disk),
)
