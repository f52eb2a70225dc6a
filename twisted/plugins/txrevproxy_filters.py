"""
The built-in filter types, registered as Twisted plugins exactly as a third
party's are (see docs/security.rst), so that C{type = "..."} in a
C{[filters.NAME]} table finds them all the same way.

Kept tiny on purpose: twistd imports every plugin module to list its
commands, so a filter's code is imported only when a configuration uses it.
"""

from __future__ import annotations

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txrevproxy.interfaces import IFilterType


@implementer(IPlugin, IFilterType)
class BuiltInFilterType:
    """
    A filter type whose C{configure} is a function of a module of
    L{txrevproxy.filters}.
    """

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self._module = module

    def configure(self, options, context):
        module = import_module("txrevproxy.filters." + self._module)
        return module.configure(options, context)


rateLimit = BuiltInFilterType("rate_limit", "rate_limit")
ipFilter = BuiltInFilterType("ip_filter", "ip_filter")
basicAuth = BuiltInFilterType("basic_auth", "basic_auth")
apiKey = BuiltInFilterType("api_key", "api_key")
forwardAuth = BuiltInFilterType("forward_auth", "forward_auth")
waf = BuiltInFilterType("waf", "waf")
securityHeaders = BuiltInFilterType("security_headers", "security_headers")
cors = BuiltInFilterType("cors", "cors")
compress = BuiltInFilterType("compress", "compress")
jwtAuth = BuiltInFilterType("jwt", "jwt_auth")
oidc = BuiltInFilterType("oidc", "oidc")
