"""
Demo backends: small HTTP servers that say who answered and what they got.

C{txrevproxy demo} starts one per loopback backend of a configuration so a
newcomer can try the proxy without a real application, and the end-to-end
tests use them as backends.  Every answer names the backend, repeats the
method and path, counts the request body and echoes the request headers as
the backend received them, so the headers the proxy adds (C{X-Forwarded-For},
C{Via}, C{X-Request-ID} ...) can be seen with a plain C{curl}.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

#: How much of the request body is read at a time while counting it.
_READ_SIZE = 65536


def body_size(request: Request) -> int:
    """
    Read the request body to its end and return its size in bytes.

    twisted.web has already received the body into C{request.content} (a
    file); it is read in pieces so that a large upload is never held twice.
    """
    content = request.content
    if content is None:
        return 0
    content.seek(0)
    size = 0
    while True:
        piece = content.read(_READ_SIZE)
        if not piece:
            return size
        size += len(piece)


def describe(name: str, request: Request) -> bytes:
    """
    The text a demo backend answers with: who answered, the request line,
    the body size and every request header as received.
    """
    size = body_size(request)
    lines: List[bytes] = [
        b"Hello from demo backend " + name.encode("utf-8") + b".",
        b"",
        b"Request: " + request.method + b" " + request.uri,
        b"Body: %d bytes" % (size,),
        b"",
        b"Headers as this backend received them:",
    ]
    for header, values in sorted(request.requestHeaders.getAllRawHeaders()):
        for value in values:
            lines.append(b"  " + header + b": " + value)
    return b"\n".join(lines) + b"\n"


class DemoBackend(Resource):
    """
    Answers every path and method with L{describe}'s text, and C{/healthz}
    with C{ok}.  The C{X-Demo-Backend} response header names the backend
    too, for scripts.

    @ivar name: how this backend calls itself in its answers, for example
        C{"app[0] 127.0.0.1:9001"}.
    """

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"X-Demo-Backend", self.name.encode("utf-8"))
        if request.path == b"/healthz":
            body_size(request)
            return b"ok\n"
        return describe(self.name, request)


class _QuietSite(Site):
    """
    A L{Site} without an access log: the demo's answers speak for
    themselves, and Twisted's log line per request would only repeat them.
    """

    def log(self, request: Request) -> None:
        pass


def demo_site(name: str) -> Site:
    """
    A site serving a L{DemoBackend} called C{name}.
    """
    return _QuietSite(DemoBackend(name))


def listen_demo_backend(reactor, name: str, host: str, port: int) -> Deferred:
    """
    Start a demo backend listening on C{host} (an IPv4 or IPv6 address) and
    C{port}.

    @return: a Deferred firing with the L{IListeningPort}.
    """
    if ":" in host:
        endpoint = TCP6ServerEndpoint(reactor, port, interface=host)
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=host)
    return endpoint.listen(demo_site(name))
