"""
HTTP/2 from clients (ALPN on TLS, h2c in cleartext): each stream is a
L{ProxyRequest} like an HTTP/1.1 request, carried to an HTTP/1.1 backend
with the same semantics.

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
  - a response cut short is reset (RST_STREAM), never ended cleanly;
  - a backend's trailer fields end the stream as its last HEADERS frame.

L{NegotiatingSite} is the site of a TLS listener with C{http2 = true}: each
connection starts as HTTP/1.1 and becomes HTTP/2 when ALPN chose C{h2}.
L{PriorKnowledgeSite} is that of a cleartext listener with C{h2c = true}
(behind another TLS terminator): a connection becomes HTTP/2 when it opens
with the HTTP/2 preface.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional

from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocol,
)
from twisted.python.components import proxyForInterface
from zope.interface import implementer

from ..http.h2_fields import UNIQUE_FIELDS
from ..http.h2_inbound import malformed_fields
from ..http.h2c import H2cUpgrade, h2c_upgrade
from ..http.hpack_static import StaticTableEncoder
from ..http.request_head import (
    NO_BODY_SEMANTICS,
    UNDERSCORED,
    body_status,
    http2_field_status,
)
from ..net.h2_drain import DrainingH2Connection
from ..net.h2_upgrade import receive_upgraded_request
from .answers import respond_with_error
from .channel import CLOSING, ClientConnection
from .request import NO_BODY_CODES, Header, ProxyRequest
from .site import ProxySite


class HTTP2ProxyRequest(ProxyRequest):
    """
    One HTTP/2 stream's request.

    Its C{transport} is the stream, so that the proxy's pausing and
    aborting act on this stream alone.
    """

    _dispatchCall = None
    _refusal = 0

    def __init__(self, stream, connection: "ProxyH2Connection") -> None:
        # Made as the HTTP/1.1 channel makes its requests (see
        # L{txrevproxy.net.http_request.StreamingRequest}): one per stream.
        super().__init__(stream)
        self.transport = stream
        self.connection = connection

    def holdWrites(self) -> Callable[[], None]:
        """
        Hold the connection's sending loop while the backend's read is
        parsed (see
        L{txrevproxy.net.h2_send.BatchingH2Connection.holdSending}): a small
        response's body and its end go out in one DATA frame, sent by one
        run of the loop.

        @return: what releases it.
        """
        connection = self.connection
        connection.holdSending()
        return connection.releaseSending

    def gotLength(self, length: Optional[int]) -> None:
        """
        Called by the stream for each Content-Length field as it reads the
        head, then, when there was none, with 0 for GET and HEAD (a guess)
        or L{None}; the head is judged whole in L{parseCookies}.
        """
        self.bodyLength = length

    def parseCookies(self) -> None:
        """
        Called by the stream once every field of the head is in: the head
        is checked and fitted for HTTP/1.1 here.

        Each field goes through the rules of an HTTP/1.1 head
        (L{http2_field_status}): a refused one, or a Content-Length given
        twice, gets 400; one whose name has C{_} is dropped with C{[server]
        underscores_in_headers = "drop"}.  C{h2} refused what RFC 9113
        section 8.2 forbids before this (see L{txrevproxy.net.h2}).

        A body follows unless the length is 0: the request is routed on
        the next turn of the reactor (the stream is not registered with its
        connection yet, so it cannot answer now), or sooner when body bytes
        or the end of the stream arrive first.  Without a Content-Length, a
        method whose body means nothing (C{GET}, C{DELETE} ...) waits for
        the first body byte or the end of the stream, which tell whether it
        has a body (L{_bodyArrived}).
        """
        headers = self.requestHeaders
        site = self.channel.site
        underscored = []
        for name, values in headers.getAllRawHeaders():
            for value in values:
                status = http2_field_status(name, value)
                if status > 0:
                    self._refuse(status)
                    return
                if status == UNDERSCORED:
                    underscored.append(name)
        if site.drop_underscored:
            # As for HTTP/1.1 (nginx's "underscores_in_headers off").
            for name in underscored:
                headers.removeHeader(name)
        lengths = headers.getRawHeaders(b"content-length")
        if lengths is None:
            # The DATA frames, not Twisted's guess, tell whether a body
            # follows.
            self.bodyLength = None
        elif len(lengths) > 1:
            # As an HTTP/1.1 head with a second Content-Length.
            self._refuse(400)
            return
        hosts = headers.getRawHeaders(b"host")
        if hosts is not None and len(hosts) == 2 and hosts[0] == hosts[1]:
            # :authority and a Host header that agree (RFC 9113 section
            # 8.3.1); Twisted adds the first as a Host header.
            headers.setRawHeaders(b"host", hosts[:1])
        cookies = headers.getRawHeaders(b"cookie")
        if cookies is not None and len(cookies) > 1:
            # RFC 9113 section 8.2.3: crumbs are joined for HTTP/1.1.
            headers.setRawHeaders(b"cookie", [b"; ".join(cookies)])
        length = self.bodyLength
        if length is None and self.channel.command in NO_BODY_SEMANTICS:
            return
        if length:
            self._bodyArrived()
        if length != 0:
            self._dispatchSoon()

    def _dispatchSoon(self) -> None:
        if self._dispatchCall is None:
            reactor = self.channel.site.reactor
            self._dispatchCall = reactor.callLater(0, self._dispatchStream)

    def _refuse(self, status: int) -> None:
        """
        Answer C{status} instead of routing the request, as soon as the
        stream can answer; the body that follows is dropped, and the
        stream reset once the answer is sent (see L{txrevproxy.net.h2}).
        """
        self._refusal = status
        self._dispatchSoon()

    def _bodyArrived(self) -> None:
        """
        The request has a body (declared, or a first byte came): on a
        method that defines none, it is refused, or forwarded as
        C{body_without_semantics} says (L{body_status}).  Forwarded, it
        needs nothing more here: a stream's end frames it, so no client
        can make it read as another request, and the backend connection
        that carries it is closed after the answer (see
        L{txrevproxy.forward.exchange}).
        """
        status = body_status(
            self.channel.command, self.channel.site.refuse_body_without_semantics
        )
        if status > 0:
            self._refusal = status

    def _dispatchStream(self) -> None:
        call = self._dispatchCall
        self._dispatchCall = None
        if call is not None and call.active():
            call.cancel()
        if not self._dispatched:
            stream = self.channel
            self._dispatch(stream.command, stream.path, b"HTTP/2")

    def _dispatch(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refusal:
            self._prepare(command, path, version)
            respond_with_error(self, self._refusal)
            return
        super()._dispatch(command, path, version)

    def handleContentChunk(self, data: bytes) -> None:
        if not self._dispatched:
            if not data:
                # An empty DATA frame says nothing of a body.
                return
            if self.bodyLength is None:
                self._bodyArrived()
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
        Write a backend's response head as the stream's HEADERS frame,
        without the L{Headers} round trip of Twisted's C{writeHeaders}
        (as L{ProxyRequest.writeResponseHead} writes HTTP/1.1's).

        @param length: unused: in HTTP/2 the stream's end frames the body,
            and a Content-Length the backend sent is passed on with it.
        """
        self.code = code
        self.code_message = reason
        self.startedWriting = 1
        # Ending the stream would make a cut-short body look complete; a
        # reset stream (what the abort of an HTTP/2 stream sends) does not.
        self.truncationVisible = False
        fields = [
            (name, value)
            for name, values in self.responseHeaders.getAllRawHeaders()
            for value in values
        ]
        fields += headers
        fields += self.addedResponseHeaders(headers)
        self.connection.writeHeaders(
            b"HTTP/2", b"%d" % (code,), reason, fields, self.channel.streamID
        )
        if self.method == b"HEAD" or code in NO_BODY_CODES:
            self.bodyless = True

    def writeTrailers(self, trailers: List[Header]) -> None:
        """
        Send the trailer fields as the stream's last HEADERS frame, which
        ends it; HTTP/2 clients always take them (gRPC's status is there).
        """
        self.connection.sendTrailers(self.channel.streamID, trailers)

    def connectionLost(self, reason) -> None:
        if self._dispatchCall is not None:
            self._dispatchCall.cancel()
            self._dispatchCall = None
        super().connectionLost(reason)


class ProxyH2Connection(ClientConnection, DrainingH2Connection):
    """
    An HTTP/2 server connection whose streams are L{HTTP2ProxyRequest}s.

    A proxy may answer before the request body is in (an error, a backend
    that does not wait for the upload): its base class drops the client's
    frames for a stream already answered.  At a graceful shutdown, or when
    a reload closes its listener, the site drains it (GOAWAY, see
    L{DrainingH2Connection}).

    @ivar refusing: the connection is one too many for its client address
        (C{max_connections_per_ip}): its streams are answered 429, as an
        HTTP/1.1 client over TLS is, and the connection ends with a GOAWAY
        after the first answer.
    """

    refusing = False
    # Response heads in HPACK without the dynamic table, their fields'
    # bytes kept, except those new in every response.
    makeEncoder = staticmethod(partial(StaticTableEncoder, UNIQUE_FIELDS))
    # The client's header blocks checked in one pass, not by h2's chain.
    checkFields = staticmethod(malformed_fields)

    def connectionMade(self) -> None:
        self.learnPeer()
        self.site.h2_connections.add(self)
        self.countOpen()
        self.refusing = self.overConnectionLimit()
        super().connectionMade()

    def streamDone(self) -> None:
        if self.refusing:
            self.refusing = False
            self.goAway()

    def connectionEnding(self) -> None:
        # Called again after a GOAWAY or a stopProducing: each step is done
        # once.
        super().connectionEnding()
        self.refusing = False
        self.forgetPeer()
        self.site.h2_connections.discard(self)
        self.countClosed()

    def joinSite(self, site) -> None:
        self.site.h2_connections.discard(self)
        super().joinSite(site)
        self.factory = site
        site.h2_connections.add(self)

    def requestFactory(self, stream, queued: bool = False) -> HTTP2ProxyRequest:
        request = HTTP2ProxyRequest(stream, self)
        if self.refusing:
            # Answered when it is dispatched, as a refused head is.
            request._refusal = 429
        return request


class ChoosingChannel(proxyForInterface(IProtocol, "_channel")):  # type: ignore[misc]
    """
    A connection's HTTP protocol, chosen as its first bytes arrive: it
    starts as the HTTP/1.1 L{ProxyChannel} and, when L{choose} says so,
    hands the connection to a L{ProxyH2Connection} before the first byte
    is read.

    Twisted's own switch always builds Twisted's HTTP/2 connection, whose
    requests cannot stream to a backend.
    """

    _decided = False

    def __init__(self, channel, site: ProxySite) -> None:
        self._channel = channel
        self._site = site

    def dataReceived(self, data: bytes) -> None:
        if not self._decided:
            data = self.choose(data)
            if not data:
                return
        self._channel.dataReceived(data)

    def choose(self, data: bytes) -> bytes:
        """
        Decide the protocol from the first bytes (set C{_decided}, and
        call L{switchToHTTP2} for HTTP/2).

        @return: the bytes the chosen protocol reads now: C{data}, or
            what was kept of earlier calls with it; nothing to wait for
            more.
        """
        raise NotImplementedError()

    def switchToHTTP2(self, upgrade: Optional[H2cUpgrade] = None) -> None:
        """
        The connection is HTTP/2 from now on.

        @param upgrade: the HTTP/1.1 request that asked for it, after its
            C{101} was written: it becomes stream 1.
        """
        transport = self._channel.transport
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
        self._channel = h2
        if upgrade is not None:
            receive_upgraded_request(h2, upgrade.settings, upgrade.headers)


@implementer(IHandshakeListener)
class NegotiatingChannel(ChoosingChannel):
    """
    A TLS connection's HTTP protocol, chosen by ALPN: HTTP/2 when the
    handshake settled on C{h2}.
    """

    def handshakeCompleted(self) -> None:
        self._channel.handshakeCompleted()

    def choose(self, data: bytes) -> bytes:
        self._decided = True
        transport = self._channel.transport
        if getattr(transport, "negotiatedProtocol", None) == b"h2":
            self.switchToHTTP2()
        return data


#: What an HTTP/2 client with prior knowledge sends first (RFC 9113
#: section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


#: The answer to a request that upgrades to h2c; HTTP/2 follows.
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
)


@implementer(IHalfCloseableProtocol)
class PriorKnowledgeChannel(ChoosingChannel):
    """
    A cleartext connection's HTTP protocol: HTTP/2 when it opens with the
    connection preface (h2c with prior knowledge, RFC 9113 section 3.3),
    HTTP/1.1 otherwise.  The preface is not a valid HTTP/1.1 request
    line (version C{HTTP/2.0}), so no HTTP/1.1 request is mistaken for
    it.

    On a site with C{upgrade}, the connection's first request head is
    read whole here before anything is decided: one that asks to upgrade
    to h2c (L{h2c_upgrade}) is answered C{101} and becomes stream 1 of
    the HTTP/2 connection; any other is handed to the HTTP/1.1 channel
    as it came, as is a head longer than the site's limits.
    """

    _kept = b""

    def choose(self, data: bytes) -> bytes:
        if self._channel.state is CLOSING:
            # Refused before its first byte (max_connections_per_ip): what
            # it sends is dropped.
            self._decided = True
            return data
        data = self._kept + data
        self._kept = b""
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            # The preface may come in pieces: nothing is decided yet.
            self._kept = data
            return b""
        if data.startswith(PREFACE):
            self._decided = True
            self.switchToHTTP2()
            return data
        site = self._site
        if not site.upgrade:
            self._decided = True
            return data
        end = data.find(b"\r\n\r\n")
        if end < 0 and len(data) <= site.max_request_line + site.max_header_size:
            self._kept = data
            self._channel.headArriving()
            return b""
        self._decided = True
        upgrade = h2c_upgrade(data[:end]) if end >= 0 else None
        if upgrade is None:
            return data
        self._channel.transport.write(SWITCHING)
        self.switchToHTTP2(upgrade)
        return data[end + 4 :]

    def readConnectionLost(self) -> None:
        """
        The client closed its sending side: the HTTP/1.1 channel decides
        what that means (see L{ProxyChannel.readConnectionLost}); an
        HTTP/2 connection, or one not decided yet, is closed.
        """
        if self._decided and IHalfCloseableProtocol.providedBy(self._channel):
            self._channel.readConnectionLost()
        else:
            self._channel.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self._channel.transport.loseConnection()


class NegotiatingSite(ProxySite):
    """
    The site of a TLS listener that serves HTTP/2 to clients that ask for
    it through ALPN, and HTTP/1.1 to the others.
    """

    def buildProtocol(self, addr):
        return NegotiatingChannel(super().buildProtocol(addr), self)


class PriorKnowledgeSite(ProxySite):
    """
    The site of a cleartext listener with C{h2c = true}: HTTP/2 for the
    clients that open with its preface, HTTP/1.1 for the others, on the
    same port.

    @ivar upgrade: also upgrade to HTTP/2 the first request of a
        connection that asks with C{Upgrade: h2c} (C{h2c_upgrade = true}).
    """

    def __init__(self, *args, upgrade: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upgrade = upgrade

    def buildProtocol(self, addr):
        return PriorKnowledgeChannel(super().buildProtocol(addr), self)
