"""
C{type = "ip_filter"}: allow and deny lists of networks (IPv4 and IPv6).

The address checked is the client's (L{client_address}: the peer, or for
a trusted proxy the right-most untrusted X-Forwarded-For entry, or the
PROXY protocol source on listeners with C{proxy_protocol}).  C{deny} is
checked first; then, when C{allow} is not empty, only its networks get
through.  A refused request gets C{403 Forbidden}.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, Optional, Tuple

import attr
from zope.interface import implementer

from ..config.model import IPNetwork
from ..config.schema import Field, Table
from ..config.values import integer, networks
from ..interfaces import Answer, IFilter
from .client import client_address

#: Decisions remembered per address, at most this many.
_REMEMBERED = 10000


@attr.s(frozen=True, auto_attribs=True)
class Options:
    allow: Tuple[IPNetwork, ...] = ()
    deny: Tuple[IPNetwork, ...] = ()
    status: int = 403


def _has_a_list(arguments):
    if not arguments.get("allow") and not arguments.get("deny"):
        yield ("", "needs an allow or a deny list (or both)")


OPTIONS = Table(
    Options,
    {
        "allow": Field(networks, default=[]),
        "deny": Field(networks, default=[]),
        "status": Field(integer(400, 499), default=403),
    },
    checks=(_has_a_list,),
)


@implementer(IFilter)
class IPFilter:
    def __init__(self, options: Options) -> None:
        self.allow = options.allow
        self.deny = options.deny
        self.refusal = Answer(options.status)
        self._decided: Dict[str, bool] = {}

    def allows(self, address: str) -> bool:
        """
        Whether C{address} gets through (an address that does not parse,
        such as C{"unix"}, matches no network).
        """
        allowed = self._decided.get(address)
        if allowed is None:
            allowed = self._decide(address)
            if len(self._decided) < _REMEMBERED:
                self._decided[address] = allowed
        return allowed

    def _decide(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return not self.allow
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
            parsed = parsed.ipv4_mapped
        if any(parsed in network for network in self.deny):
            return False
        if self.allow:
            return any(parsed in network for network in self.allow)
        return True

    def request(self, request) -> Optional[Answer]:
        if self.allows(client_address(request)):
            return None
        return self.refusal

    def response(self, request, status, headers) -> None:
        return None


def configure(options, context) -> IPFilter:
    return IPFilter(OPTIONS(options))
