"""
The built-in route matcher types, registered as Twisted plugins exactly as
a third party's are (see docs/routing.rst), so that a route's C{methods},
C{headers} and C{query}, and the keys of its C{match} table, find them all
the same way.

Kept tiny on purpose: twistd imports every plugin module to list its
commands, so the matchers are imported only when a configuration uses them.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from txrevproxy.interfaces import IMatcherType


@implementer(IPlugin, IMatcherType)
class BuiltInMatcherType:
    """
    A matcher type whose settings are checked by a converter of
    L{txrevproxy.config.routes} (the one of the route key of the same
    name) and whose matchers are made by a function of
    L{txrevproxy.routing.matchers}.
    """

    def __init__(self, name: str, converter: str, factory: str) -> None:
        self.name = name
        self._converter = converter
        self._factory = factory

    def configure(self, value):
        from txrevproxy.config import routes

        return getattr(routes, self._converter)(value)

    def matchers(self, settings):
        from txrevproxy.routing import matchers

        return getattr(matchers, self._factory)(settings)


methods = BuiltInMatcherType("methods", "methods", "method_matchers")
headers = BuiltInMatcherType("headers", "header_matches", "header_matchers")
query = BuiltInMatcherType("query", "query_matches", "query_matchers")
