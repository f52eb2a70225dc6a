"""
The built-in filter types, registered as Twisted plugins exactly as a
third party's are, so that C{type = "..."} in a C{[filters.NAME]} table
finds them all the same way.

Kept tiny on purpose: twistd imports every plugin module to list its
commands, so a filter's implementation is imported only when a
configuration uses it.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txrevproxy.interfaces import IFilterType


@implementer(IPlugin, IFilterType)
class BuiltInFilter:
    """
    A filter type whose C{configure} is the function of that name in a
    module of L{txrevproxy.filters}.
    """

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self._module = module

    def configure(self, options, context):
        return import_module("txrevproxy.filters." + self._module).configure(
            options, context
        )


compress = BuiltInFilter("compress", "compress")
