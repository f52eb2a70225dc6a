"""
The built-in cache store types, registered as Twisted plugins exactly as a
third party's are (see docs/caching.rst), so that C{store = "..."} in a
C{[caches.NAME]} table finds them all the same way.

Kept tiny on purpose: twistd imports every plugin module to list its
commands, so a store's code is imported only when a cache uses it.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txrevproxy.interfaces import ICacheStoreType


@implementer(IPlugin, ICacheStoreType)
class BuiltInStoreType:
    """
    A store type whose C{configure} is a function of a module of
    L{txrevproxy.cache}.
    """

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self._module = module

    def configure(self, settings, clock):
        module = import_module("txrevproxy.cache." + self._module)
        return module.configure(settings, clock)


memory = BuiltInStoreType("memory", "store")
disk = BuiltInStoreType("disk", "disk")
