"""
Scripted origins for the cache's integration tests, and reading their
raw responses.
"""

from __future__ import annotations

from typing import Callable, List

from twisted.internet.defer import Deferred
from twisted.web import resource, server


def parse_response(raw: bytes):
    """
    One raw HTTP/1.1 response: (status, headers by lower-case name, body
    with any chunking removed).
    """
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers.setdefault(name.lower(), []).append(value)
    if headers.get(b"transfer-encoding") == [b"chunked"]:
        decoded = b""
        while True:
            size, _, rest = body.partition(b"\r\n")
            length = int(size, 16)
            if length == 0:
                break
            decoded += rest[:length]
            body = rest[length + 2 :]
        body = decoded
    return int(lines[0].split()[1]), headers, body


class Scripted(resource.Resource):
    """
    A backend whose answers a test scripts: C{answer(request)} returns the
    body (or NOT_DONE_YET); every request is recorded.
    """

    isLeaf = True

    def __init__(self, answer: Callable) -> None:
        super().__init__()
        self.answer = answer
        self.requests: List = []

    def render(self, request):
        self.requests.append(request)
        return self.answer(request)


class Held:
    """
    A backend answer held open: the first request gets the head fields
    and then whatever the test writes to C{first}; later requests are
    answered at once with C{later}.
    """

    def __init__(self, cache_control: bytes, length: bytes = b"", later: bytes = b"") -> None:
        self.cache_control = cache_control
        self.length = length
        self.later = later
        self.first = None
        self.arrived = Deferred()

    def __call__(self, request):
        request.setHeader(b"Cache-Control", self.cache_control)
        if self.length:
            request.setHeader(b"Content-Length", self.length)
        if self.first is not None:
            return self.later
        self.first = request
        self.arrived.callback(None)
        return server.NOT_DONE_YET
