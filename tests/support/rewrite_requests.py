"""
Requests as the path and header rewrites see them.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.server.site import ProxySite
from txrevproxy.tools.explain import replay


def request(target: bytes, host: bytes = b"shop.test:8080"):
    """
    A real request for C{target}, parsed by an HTTPS listener's site from
    a client at 192.0.2.7.
    """
    site = ProxySite(
        Resource(), reactor=MemoryReactorClock(), settings=ServerSettings(), scheme=b"https"
    )
    made, _ = replay(site, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, host), "192.0.2.7")
    made.request_id = b"0123456789abcdef"
    return made
