"""
Requests as the router sees them, made without a connection.
"""

from __future__ import annotations

from twisted.web.test.requesthelper import DummyRequest


def request(target: bytes, host: bytes = b"example.test", method: bytes = b"GET", headers=()):
    """
    A request as routing sees it.
    """
    made = DummyRequest([])
    made.method = method
    made.uri = target
    made.path = target.split(b"?", 1)[0]
    made.requestHeaders.setRawHeaders(b"host", [host])
    for name, value in headers:
        made.requestHeaders.addRawHeader(name, value)
    return made
