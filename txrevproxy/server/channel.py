"""
The client connection: a C{twisted.web} HTTP/1.1 channel that streams
request bodies.

Twisted's own L{HTTPChannel} reads a whole request body (into memory or a
temporary file) before the resource sees the request.  A proxy must not:
L{ProxyChannel} hands a request with a body to the resource tree as soon as
its headers are in (see L{txrevproxy.server.request}).  Requests without a
body take Twisted's ordinary path.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.internet.interfaces import IHandshakeListener
from twisted.web import http
from zope.interface import implementer

from ..http.chunked import ChunkedDecoder, MalformedChunks
from ..http.headers import connection_tokens, http_date, serialize_head
from ..http.request_head import field_line_status, request_line_status
from ..net.direct_send import direct_writer
from ..net.malformed_body import BadRequestBody
from ..net.read_size import set_read_size
from .answers import error_body, reason_phrase
from .request import DISCARD, ProxyRequest, ignore_data, new_request_id

#: A client subject not read yet (L{None} means there is none).
_UNREAD = object()


class MalformedRequestChunks(MalformedChunks, BadRequestBody):
    """
    A malformed chunked request body: an error Twisted's channel answers
    with 400 Bad Request.
    """


class RequestChunkedDecoder(ChunkedDecoder):
    """
    The strict chunked decoder, for the channel's request bodies.
    """

    malformed = MalformedRequestChunks


class ClientConnection:
    """
    What the proxy needs to know of a client connection, learnt once when
    it is made: mixed into the HTTP/1.x and the HTTP/2 server protocols.

    @ivar client_ip: the peer address, as bytes.
    @ivar trusted: whether the peer is one of C{[server] trusted_proxies}.
    @ivar tls_version: the TLS version of the connection, such as
        C{"TLSv1.3"}, once its handshake completed; L{None} without TLS.
    """

    client_ip = b""
    trusted = False
    tls_version: Optional[str] = None
    _client_subject: object = None
    _counted = False

    def learnPeer(self) -> None:
        """
        Read the peer's facts from the transport; called by
        C{connectionMade}.
        """
        self._client_subject = _UNREAD
        self._peer = self.transport.getPeer()
        self._host = self.transport.getHost()
        host = getattr(self._peer, "host", None)
        self.client_ip = host.encode("ascii") if host else b"unix"
        site = self.site
        self.trusted = site.is_trusted(host)
        if site.max_connections_per_ip:
            site.count_connection(self.client_ip, 1)
            self._counted = True

    def forgetPeer(self) -> None:
        """
        The connection is over (or handed to another protocol object):
        it no longer counts against its address's connection limit.
        """
        if self._counted:
            self._counted = False
            self.site.count_connection(self.client_ip, -1)

    def overConnectionLimit(self) -> bool:
        """
        Whether this connection is one too many for its client address.
        """
        limit = self.site.max_connections_per_ip
        return bool(limit) and self.site.connection_count(self.client_ip) > limit

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake completed (L{IHandshakeListener}): note and count
        its version.
        """
        version = self.transport.getHandle().get_protocol_version_name()
        self.tls_version = version
        self.site.stats.handshake(version)

    def client_subject(self) -> Optional[bytes]:
        """
        The subject (RFC 4514) of the certificate the client presented and
        the TLS layer verified, or L{None}; read once per connection.
        """
        subject = self._client_subject
        if subject is _UNREAD:
            certificate = self.transport.getPeerCertificate()
            subject = None
            if certificate is not None:
                text = certificate.to_cryptography().subject.rfc4514_string()
                subject = text.encode("utf-8")
            self._client_subject = subject
        return subject

    def getPeer(self):
        """
        The peer address, read once per connection: every request asks for
        it, and for TCP it does not change.
        """
        return self._peer

    def getHost(self):
        """
        The local address, read once per connection (each read is a
        getsockname system call).
        """
        return self._host


@implementer(IHandshakeListener)
class ProxyChannel(ClientConnection, http.HTTPChannel):
    """
    An HTTP/1.1 server connection that streams request bodies and reads
    request heads strictly (see L{txrevproxy.http.request_head}): a head
    that breaks RFC 9112 or the site's limits is answered with 400, 405,
    408, 414, 431 or 505, the connection is closed, and nothing of that
    request reaches a backend.

    @ivar headStarted: when the request head being read began, or L{None}
        between heads; the site closes a connection whose head takes
        longer than C{header_timeout} (slowloris).
    @ivar idleSince: when the connection last had no request (it opened,
        or a response ended); the site closes a connection idle for
        C{keepalive_timeout}.
    """

    headStarted: Optional[float] = None
    idleSince = 0.0
    _headLines = 0
    _headSize = 0
    _awaitingDispatch: Optional[ProxyRequest] = None
    _rejected = False
    _served = 0
    _peerPending = False
    _bodyRequest: Optional[ProxyRequest] = None
    _bodyWindow: Optional[Tuple[float, int]] = None
    _held: Optional[List[bytes]] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        set_read_size(self.transport)
        self._send = direct_writer(self.transport)
        site = self.site
        if site.proxy_protocol:
            # The client is named by the PROXY header, which comes with the
            # first bytes.
            self._peerPending = True
        else:
            self.learnPeer()
        # Twisted's own limits answer 400 or drop the connection; they are
        # set at ours so that ours (with the right statuses) come first.
        self.MAX_LENGTH = max(site.max_request_line, site.max_header_size)
        self.totalHeadersSize = site.max_header_size
        self.maxHeaders = site.max_headers
        self.idleSince = site.reactor.seconds()
        site.channels.add(self)
        site.stats.connections += 1
        if not self._peerPending and self.overConnectionLimit():
            self.reject(429)

    def connectionLost(self, reason) -> None:
        site = self.site
        site.channels.discard(self)
        site.stats.connections -= 1
        self.forgetPeer()
        super().connectionLost(reason)

    def requestDone(self, request) -> None:
        """
        A response ended: the connection is idle from now, unless a
        pipelined request was waiting behind it.
        """
        super().requestDone(request)
        now = self.site.reactor.seconds()
        self.idleSince = now
        if self._buffer and self.headStarted is None and not self.requests:
            # Part of a pipelined head came with the previous request: its
            # time counts from now.
            self.headStarted = now

    def isIdle(self) -> bool:
        """
        Whether the connection carries no request, and no head has started.
        """
        return not self.requests and self.headStarted is None

    def closeIdle(self, overdue: float) -> None:
        """
        Close a connection that stayed idle for C{keepalive_timeout}, as
        Twisted's own idle timeout does: cleanly, or, when the client has
        not taken what is written to it C{abortTimeout} seconds later, at
        once.

        @param overdue: seconds since the connection should have closed.
        """
        if not self.transport.disconnecting:
            self.transport.loseConnection()
        elif overdue >= self.abortTimeout:
            self.transport.abortConnection()

    def _protocolUpgradeForWebsockets(self, protocol) -> None:
        """
        The connection became a tunnel (see L{txrevproxy.forward.tunnel}),
        which owns it from now on: it is no longer an HTTP connection of
        the site's (the tunnel closes it on its own timeout, or at exit).
        """
        site = self.site
        site.channels.discard(self)
        site.stats.connections -= 1
        # Nor does it count against max_connections_per_ip any longer.
        self.forgetPeer()
        super()._protocolUpgradeForWebsockets(protocol)

    def dataReceived(self, data: bytes) -> None:
        if self._peerPending:
            self._peerPending = False
            self.learnPeer()
            if self.overConnectionLimit():
                self.reject(429)
                return
        if self.headStarted is None and not self.requests:
            self.headStarted = self.site.reactor.seconds()
        super().dataReceived(data)
        if self._rejected:
            return
        pending = self._buffer
        if self.line_mode and pending and (
            b"\n" in pending or b"\r" in pending[:-1]
        ):
            # A head line ended by a bare LF or CR: waiting for a CRLF that
            # is not coming would only hold the connection open.
            self.reject(400)
            return
        request = self._awaitingDispatch
        if request is not None:
            # Everything read so far is parsed, and the body's first bytes
            # (if any came) were well formed: route the request now.
            self._awaitingDispatch = None
            request.dispatchBody()
            expect = request.requestHeaders.getRawHeaders(b"expect")
            if (
                expect
                and expect[0].lower() == b"100-continue"
                and request.clientproto == b"HTTP/1.1"
                and not request.bodyComplete
                and not request.startedWriting
            ):
                # RFC 9110 section 10.1.1: the proxy satisfies the
                # expectation itself (it strips Expect) once it is willing
                # to read the body.
                self._send100Continue()

    def holdWrites(self) -> None:
        """
        Keep what is written until L{releaseWrites}, to send it in one
        system call: the upstream connection holds the writes it causes
        while it parses what it read, which sends a small response's head
        and body together.
        """
        if self._held is None:
            self._held = []

    def releaseWrites(self) -> None:
        """
        Send what was held since L{holdWrites}, and write at once again.
        """
        held = self._held
        self._held = None
        if held:
            self._send(b"".join(held))

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._send(data)
        else:
            held.append(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def writeHeaders(self, version, code, reason, headers) -> None:
        """
        Twisted's own response head (of the answers the proxy makes
        itself, such as error pages), through L{write} so that it keeps
        its place after what is held.
        """
        self.write(
            serialize_head(
                b"%s %s %s" % (version, code, reason),
                (
                    (name, value)
                    for name, values in headers.getAllRawHeaders()
                    for value in values
                ),
            )
        )

    def loseConnection(self) -> None:
        # What is held goes before the connection closes.
        self.releaseWrites()
        super().loseConnection()

    def lineReceived(self, line: bytes) -> None:
        lines = self._headLines
        site = self.site
        if lines == 0:
            if not line:
                # Twisted skips one empty line before a request (old
                # clients sent CRLF after a POST body).
                super().lineReceived(line)
                return
            if self.headStarted is None:
                self.headStarted = site.reactor.seconds()
            if len(line) > site.max_request_line:
                self.reject(414)
                return
            status = request_line_status(line)
            self._headSize = len(line) + 2
        elif line:
            self._headSize += len(line) + 2
            if lines > site.max_headers or self._headSize > site.max_header_size:
                status = 431
            else:
                status = field_line_status(line, self._version)
        else:
            status = 0
        if status:
            self.reject(status)
            return
        self._headLines = lines + 1
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.reject(414 if self._headLines == 0 else 431)

    def reject(self, status: int) -> None:
        """
        Answer C{status} to a request the proxy will not read any further,
        and close the connection: what follows on it cannot be trusted to
        start a request.  The request's exchange, if it began, is
        abandoned, so its backend connection is dropped.
        """
        if self._rejected:
            return
        self._rejected = True
        self._awaitingDispatch = None
        self.headStarted = None
        self.persistent = False
        self.dataReceived = self.lineReceived = self.rawDataReceived = ignore_data
        request = self.requests[-1] if self.requests else None
        if request is not None:
            handler = request.handler
            request.handler = DISCARD
            handler.clientGone()
            if request.startedWriting:
                # The middle of a response is no place for an error.
                self.transport.abortConnection()
                return
        request_id = new_request_id()
        body = error_body(status, request_id)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"X-Request-ID: %s\r\n"
            b"Date: %s\r\n"
            b"Connection: close\r\n\r\n%s"
            % (
                status,
                reason_phrase(status),
                len(body),
                request_id,
                http_date(self.site.reactor.seconds()),
                body,
            )
        )
        self.transport.loseConnection()

    def checkPersistence(self, request, version: bytes) -> bool:
        """
        Whether the connection stays open after this request: HTTP/1.1
        unless a Connection header lists C{close} (a comma-separated list
        that may span several header lines, RFC 9110 section 7.6.1; Twisted's
        own check reads only the first line's first word).
        """
        tokens = connection_tokens(request.requestHeaders.getRawHeaders(b"connection"))
        self._served += 1
        limit = self.site.max_requests_per_connection
        if version == b"HTTP/1.1" and b"close" not in tokens:
            if not limit or self._served < limit:
                return True
        if version == b"HTTP/1.1":
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        self._headLines = self._headSize = 0
        self.headStarted = None
        self.persistent = self.checkPersistence(request, self._version)
        if self.length == 0:
            # No body: Twisted's path dispatches it from allContentReceived.
            return
        if self.length is None:
            self._transferDecoder = RequestChunkedDecoder(
                request.handleContentChunk, self._finishRequestBody
            )
        request.headersReceived(self._command, self._path, self._version, self.length)
        self._awaitingDispatch = self._bodyRequest = request

    def _respondToBadRequestAndDisconnect(self) -> None:
        """
        What Twisted's parser calls on a malformed head or body (a bad
        header name, a second Content-Length, a bad chunk): see L{reject}.
        """
        self.reject(400)

    def checkBodyRate(self, now: float, window: float, minimum: int) -> None:
        """
        Answer 408 if the request body being read brought fewer than
        C{minimum} bytes in the last C{window} seconds; time during which
        the proxy itself did not read (the backend was not taking the
        body) does not count.
        """
        request = self._bodyRequest
        if request is None or request.bodyComplete:
            self._bodyWindow = None
            return
        received = request.bodyBytes
        if request.readingPaused or self._bodyWindow is None:
            self._bodyWindow = (now, received)
            return
        start, at = self._bodyWindow
        if now - start < window:
            return
        if received - at < minimum:
            self.reject(408)
        else:
            self._bodyWindow = (now, received)

    def allContentReceived(self) -> None:
        self._bodyRequest = self._bodyWindow = None
        if not self.requests:
            # The response ended before the request body did; the
            # connection is closing (see ProxyRequest.finish).
            return
        super().allContentReceived()
