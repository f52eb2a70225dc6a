"""
Twisted's request, with what the proxy needs of its private state behind
public names.

C{twisted.web}'s L{server.Request} keeps whether its client went in a
private flag, and drops the body of a response that has none (a HEAD
request's, a 204's, a 304's) by replacing its own C{write} on the
instance.  L{StreamingRequest} offers the first as L{disconnected}, and
writes body bytes itself, checking L{bodyless}: the write of every body
chunk costs one call, as Twisted's does.  (Twisted still replaces C{write}
for the head it writes itself, that of an answer the proxy makes to a HEAD
request or with 204 or 304: nothing is written after that head.)

A request of the proxy's HTTP/1.1 channel is also made without
twisted.web's constructors' calls, its fields put in its L{RequestFields}
at once (L{add_fields}) and looked up without the name encoder's call:
that channel makes one for every request a client sends.
"""

from __future__ import annotations

from typing import Iterable, Tuple

from twisted.web import server
from twisted.web.http import toChunk
from twisted.web.http_headers import Headers, _nameEncoder

TWISTED_PRIVATE = (
    "twisted.web.http.Request._disconnected",
    "twisted.web.http.Request._parsePOSTFormSubmission",
    "twisted.web.server.Site._parsePOSTFormSubmission",
    "twisted.python.components.Componentized._adapterCache",
    "twisted.web.http_headers._nameEncoder",
    "twisted.web.http_headers._NameEncoder._canonicalHeaderCache",
    "twisted.web.http_headers.Headers._rawHeaders",
)

_canonical = _nameEncoder._canonicalHeaderCache
_encode = _nameEncoder.encode


def add_fields(headers: Headers, fields: Iterable[Tuple[bytes, bytes]]) -> None:
    """
    Add a request's fields to its C{headers}, as C{addRawHeader} does for
    each, without its checks: the proxy's head reader made them (see
    L{txrevproxy.http.request_parser}: every name is a token, every value
    is without CR, LF, NUL and the whitespace around it).

    @param fields: C{(name, value)} pairs, names as sent.
    """
    raw = headers._rawHeaders
    for name, value in fields:
        key = _canonical.get(name) or _encode(name)
        values = raw.get(key)
        if values is None:
            raw[key] = [value]
        else:
            values.append(value)


class RequestFields(Headers):
    """
    A request's L{Headers}, whose lookups by a C{bytes} name Twisted has
    seen before (the fields the proxy reads, such as C{host} and
    C{connection}) take one dictionary lookup, without a call to the name
    encoder each.
    """

    def getRawHeaders(self, name, default=None):
        key = _canonical.get(name)
        if key is None or name.__class__ is not bytes:
            return Headers.getRawHeaders(self, name, default)
        return self._rawHeaders.get(key) or default

    def hasHeader(self, name) -> bool:
        key = _canonical.get(name)
        if key is None:
            return Headers.hasHeader(self, name)
        return key in self._rawHeaders


class StreamingRequest(server.Request):
    """
    A L{server.Request} that says whether its client went, and writes the
    body of a response whose head the proxy wrote itself.

    @ivar bodyless: whether the response has no body (a HEAD request's,
        a 204's, a 304's), so that what is written of it is dropped; set
        by whoever writes a head without Twisted.
    """

    bodyless = False

    def __init__(self, channel, *args, **kwargs) -> None:
        if args or kwargs:
            server.Request.__init__(self, channel, *args, **kwargs)
            return
        # What twisted.web's two constructors do (the request's state as a
        # new request of a channel has it), without their calls: a
        # request is made for every one a client sends.
        self.notifications = []
        self.channel = channel
        self.client = channel.getPeer()
        self.host = channel.getHost()
        self.requestHeaders = RequestFields()
        self.received_cookies = {}
        self.responseHeaders = Headers()
        self.cookies = []
        self.transport = channel.transport
        self.queued = False
        self._parsePOSTFormSubmission = channel.site._parsePOSTFormSubmission
        self._adapterCache = {}

    @property
    def disconnected(self) -> bool:
        """
        Whether the client connection (or the HTTP/2 stream) was lost.
        """
        return self._disconnected

    def write(self, data: bytes) -> None:
        """
        Write response body bytes, or, before the head is out, let Twisted
        write the head from C{responseHeaders} first.
        """
        if self.startedWriting and not (
            self.finished or self._disconnected or self.bodyless
        ):
            self.sentLength += len(data)
            if data:
                if self.chunked:
                    self.channel.writeSequence(toChunk(data))
                else:
                    self.channel.write(data)
        elif not self.bodyless:
            # The head, or what Twisted does with a write after finish or
            # after the client went.
            server.Request.write(self, data)
