"""
HTTP/2 on TLS listeners: each stream is a L{ProxyRequest} like an HTTP/1.1
request, carried to an HTTP/1.1 backend with the same semantics.

Twisted's HTTP/2 connection (on the C{h2} package, see
L{txrevproxy.net.h2}) does the framing, HPACK
and flow control, and gives each stream an L{H2Stream} as the request's
channel.  This module fits the proxy's request to it:

  - a request with a body is dispatched as soon as its headers are in, so
    the body streams to the backend (Twisted's own path waits for the end
    of the stream);
  - the response head goes out through the stream's C{writeHeaders}, with
    no connection-specific fields (RFC 9113 section 8.2.2);
  - pausing the client's upload is stream-level: the stream stops opening
    its flow-control window, the connection goes on;
  - a response cut short is reset (RST_STREAM), never ended cleanly.

L{NegotiatingSite} is the site of a TLS listener with C{http2 = true}: each
connection starts as HTTP/1.1 and becomes HTTP/2 when ALPN chose C{h2}.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.interfaces import IHandshakeListener, IProtocol
from twisted.python.components import proxyForInterface
from zope.interface import implementer

from ..net.h2 import EarlyAnswerH2Connection
from .channel import ClientConnection
from .request import NO_BODY_CODES, Header, ProxyRequest
from .site import ProxySite


class HTTP2ProxyRequest(ProxyRequest):
    """
    One HTTP/2 stream's request.

    Its C{transport} is the stream, so that the proxy's pausing and
    aborting act on this stream alone.
    """

    _dispatchCall = None

    def __init__(self, stream, connection: "ProxyH2Connection") -> None:
        super().__init__(stream, queued=False)
        self.transport = stream
        self.connection = connection

    def holdWrites(self) -> None:
        """
        Nothing to hold: the stream's writes are DATA frames, which the
        connection's TLS layer already gathers.
        """
        return None

    def gotLength(self, length: Optional[int]) -> None:
        """
        Called by the stream once the request's headers are in, with the
        declared body length (L{None}: unknown, 0: no body).

        A body follows unless the length is 0: the request is routed on
        the next turn of the reactor (the stream is not registered with its
        connection yet, so it cannot answer now), or sooner when body bytes
        or the end of the stream arrive first.
        """
        self.bodyLength = length
        headers = self.requestHeaders
        hosts = headers.getRawHeaders(b"host")
        if hosts is not None and len(hosts) == 2 and hosts[0] == hosts[1]:
            # :authority and a Host header that agree (RFC 9113 section
            # 8.3.1); Twisted adds the first as a Host header.
            headers.setRawHeaders(b"host", hosts[:1])
        cookies = headers.getRawHeaders(b"cookie")
        if cookies is not None and len(cookies) > 1:
            # RFC 9113 section 8.2.3: crumbs are joined for HTTP/1.1.
            headers.setRawHeaders(b"cookie", [b"; ".join(cookies)])
        if length != 0:
            reactor = self.channel.site.reactor
            self._dispatchCall = reactor.callLater(0, self._dispatchStream)

    def parseCookies(self) -> None:
        """
        Nothing to parse: the proxy passes cookies on untouched.
        """

    def _dispatchStream(self) -> None:
        call = self._dispatchCall
        self._dispatchCall = None
        if call is not None and call.active():
            call.cancel()
        if not self._dispatched:
            stream = self.channel
            self._dispatch(stream.command, stream.path, b"HTTP/2")

    def handleContentChunk(self, data: bytes) -> None:
        if not self._dispatched:
            self._dispatchStream()
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        The stream ended.  If no body byte came before, the request is
        dispatched now as one without a body.
        """
        if self._dispatchCall is not None:
            self._dispatchCall.cancel()
            self._dispatchCall = None
        super().requestReceived(command, path, version)

    def closeAfterResponse(self) -> None:
        """
        Nothing to do: an HTTP/2 stream ends with its response, the
        connection goes on, and Connection is not an HTTP/2 field.
        """

    def writeResponseHead(
        self, code: int, reason: bytes, headers: List[Header], length: Optional[int]
    ) -> None:
        """
        Write a backend's response head as the stream's HEADERS frame.

        @param length: unused: in HTTP/2 the stream's end frames the body,
            and a Content-Length the backend sent is passed on with it.
        """
        self.code = code
        self.code_message = reason
        self.startedWriting = 1
        # Ending the stream would make a cut-short body look complete; a
        # reset stream (what the abort of an HTTP/2 stream sends) does not.
        self.truncationVisible = False
        block = self.responseHeaders
        for name, value in headers + self.addedResponseHeaders(headers):
            block.addRawHeader(name, value)
        self.channel.writeHeaders(b"HTTP/2", b"%d" % (code,), reason, block)
        if self.method == b"HEAD" or code in NO_BODY_CODES:
            self.bodyless = True

    def connectionLost(self, reason) -> None:
        if self._dispatchCall is not None:
            self._dispatchCall.cancel()
            self._dispatchCall = None
        super().connectionLost(reason)


class ProxyH2Connection(ClientConnection, EarlyAnswerH2Connection):
    """
    An HTTP/2 server connection whose streams are L{HTTP2ProxyRequest}s.

    A proxy may answer before the request body is in (an error, a backend
    that does not wait for the upload): its base class drops the client's
    frames for a stream already answered.
    """

    def connectionMade(self) -> None:
        self.learnPeer()
        self.site.h2_connections.add(self)
        self.countOpen()
        super().connectionMade()

    def connectionEnding(self) -> None:
        # Called again after a GOAWAY or a stopProducing: each step is done
        # once.
        self.forgetPeer()
        self.site.h2_connections.discard(self)
        self.countClosed()

    def joinSite(self, site) -> None:
        self.site.h2_connections.discard(self)
        super().joinSite(site)
        self.factory = site
        site.h2_connections.add(self)

    def requestFactory(self, stream, queued: bool = False) -> HTTP2ProxyRequest:
        return HTTP2ProxyRequest(stream, self)


@implementer(IHandshakeListener)
class NegotiatingChannel(proxyForInterface(IProtocol, "_channel")):  # type: ignore[misc]
    """
    A TLS connection's HTTP protocol, chosen by ALPN: it starts as the
    HTTP/1.1 L{ProxyChannel} and, when the handshake settled on C{h2}, hands
    the connection to a L{ProxyH2Connection} before the first byte is read.

    Twisted's own switch always builds Twisted's HTTP/2 connection, whose
    requests cannot stream to a backend.
    """

    _decided = False

    def __init__(self, channel, site: "NegotiatingSite") -> None:
        self._channel = channel
        self._site = site

    def handshakeCompleted(self) -> None:
        self._channel.handshakeCompleted()

    def dataReceived(self, data: bytes) -> None:
        if not self._decided:
            self._decided = True
            transport = self._channel.transport
            if getattr(transport, "negotiatedProtocol", None) == b"h2":
                self._channel = self._switchToHTTP2(transport)
        self._channel.dataReceived(data)

    def _switchToHTTP2(self, transport) -> ProxyH2Connection:
        # HTTPChannel made itself the transport's producer; the HTTP/2
        # connection takes that place, and the HTTP/1.1 idle timer goes.
        transport.unregisterProducer()
        self._channel.setTimeout(None)
        site = self._site
        site.channels.discard(self._channel)
        # The HTTP/2 connection counts itself, as open and against the
        # address's limit.
        self._channel.forgetPeer()
        self._channel.countClosed()
        h2 = ProxyH2Connection(site.reactor)
        h2.site = site
        h2.tls_version = self._channel.tls_version
        h2.factory = site
        h2.timeOut = site.keepalive_timeout
        h2.callLater = site.reactor.callLater
        h2.makeConnection(transport)
        transport.registerProducer(h2, True)
        return h2


class NegotiatingSite(ProxySite):
    """
    The site of a TLS listener that serves HTTP/2 to clients that ask for
    it through ALPN, and HTTP/1.1 to the others.
    """

    def buildProtocol(self, addr):
        return NegotiatingChannel(super().buildProtocol(addr), self)
