"""
The client side: a C{twisted.web} site whose requests stream their bodies.

Twisted's own L{HTTPChannel} reads a whole request body (into memory or a
temporary file) before the resource sees the request.  A proxy must not:
L{ProxyChannel} hands a request with a body to the resource tree as soon as
its headers are in, and L{ProxyRequest} passes each body chunk on to its
C{handler} (the L{ProxyExchange}) as it arrives.  Requests without a body
take Twisted's ordinary path.
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Callable, Dict, List, Optional, Set, Tuple

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import http, server
from zope.interface import implementer

from ..config.model import ServerSettings
from ..filters.chain import run_filters
from ..observe.metrics import ListenerStats
from .answers import error_body, reason_phrase, respond_with_error
from ..http.headers import connection_tokens, http_date, requested_upgrade, serialize_head
from ..http.chunked import ChunkedDecoder
from ..net.direct_send import direct_writer
from ..net.read_size import set_read_size
from ..http.request_head import field_line_status, request_line_status

Header = Tuple[bytes, bytes]
NO_BODY_CODES = frozenset([204, 304])

_MAX_REQUEST_ID = 200

#: A Host field value (RFC 9110 section 7.2): a registered name or an IP
#: literal, then an optional port.
_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?\Z"
)


class _Discard:
    """
    The handler of a request body that nobody wants (the request was
    answered without a backend): its bytes are read and dropped.
    """

    def bodyReceived(self, data: bytes) -> None:
        pass

    def bodyFinished(self) -> None:
        pass

    def bodyTooLarge(self) -> None:
        pass

    def clientGone(self) -> None:
        pass


_DISCARD = _Discard()

#: A client subject not read yet (L{None} means there is none).
_UNREAD = object()


def ignore_data(data: bytes) -> None:
    """
    Drop bytes: the C{write} of a response that has no body (HEAD, 204,
    304), and what a channel does with data from a client it gave up on.
    """


def new_request_id() -> bytes:
    """
    A random request ID: 16 hex digits.
    """
    return b"%016x" % (random.getrandbits(64),)


def _valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= _MAX_REQUEST_ID and all(33 <= c < 127 for c in value)


class ProxyRequest(server.Request):
    """
    A request that is dispatched as soon as its headers are complete when a
    body follows, and whose body streams to L{handler}.

    @ivar handler: receives C{bodyReceived}, C{bodyFinished},
        C{bodyTooLarge} and C{clientGone}.
    @ivar bodyLength: the declared body length, or L{None} when chunked.
    @ivar bodyComplete: whether the whole request body has been received.
    @ivar bodyBytes: how many request body bytes have been received.
    @ivar request_id: the ID sent to the backend, returned to the client and
        shown on error pages.
    @ivar truncationVisible: whether the response's framing (a length, or
        chunking) lets the client see that a body was cut short.
    @ivar response_filters: the filters the request passed, which see its
        response head (see L{txrevproxy.filters.chain}).
    @ivar connection: the client connection's facts (C{client_ip},
        C{trusted}, C{client_subject()}): the L{ProxyChannel} for HTTP/1.x,
        the HTTP/2 connection for a stream.
    @ivar error_pages: the pages of the route that took the request, by
        status (see L{respond_with_error}), or L{None}.
    @ivar started: when the request was dispatched (its head was in).
    @ivar router: the L{Router} that routed it, or L{None}.
    @ivar route_index: the position of the route that took it in the
        router's C{routes}, or L{None}.
    @ivar backend: the L{txrevproxy.upstream.balancer.Backend} that answered (the
        last one tried), or L{None}.
    @ivar upstream_time: seconds from choosing that backend to its
        response head, or L{None}.
    """

    log = Logger()
    handler = _DISCARD
    bodyLength: Optional[int] = 0
    bodyComplete = False
    request_id = b"-"
    truncationVisible = False
    error_pages = None
    started = 0.0
    router = None
    route_index: Optional[int] = None
    backend = None
    upstream_time: Optional[float] = None
    _chosenAt = 0.0
    _dispatched = False
    bodyBytes = 0
    _early: Optional[List[bytes]] = None
    response_filters: Tuple = ()
    readingPaused = False

    @property
    def connection(self):
        return self.channel

    def headersReceived(
        self, command: bytes, path: bytes, version: bytes, length: Optional[int]
    ) -> None:
        """
        All headers are in and a body of C{length} bytes (L{None}: chunked)
        follows.  The request is routed (L{dispatchBody}) once the channel
        has parsed what it has read, so that a request whose first body
        bytes are malformed (a smuggling attempt) is refused before any of
        it reaches a backend; the body bytes parsed until then are held.
        """
        self.bodyLength = length
        self.site = self.channel.site
        self._head = (command, path, version)
        self._early: Optional[List[bytes]] = []

    def pauseReading(self) -> None:
        """
        Stop reading the client (its body is not wanted yet); the slow
        client check does not count the time this lasts.
        """
        self.readingPaused = True
        self.transport.pauseProducing()

    def resumeReading(self) -> None:
        self.readingPaused = False
        self.transport.resumeProducing()

    def dispatchBody(self) -> None:
        """
        Route a request whose body has started (see L{headersReceived}),
        and hand it the body bytes held so far.
        """
        early = self._early
        if early is None:
            return
        self._early = None
        if self._disconnected:
            return
        self._dispatch(*self._head)
        for chunk in early:
            self.handler.bodyReceived(chunk)

    def handleContentChunk(self, data: bytes) -> None:
        self.bodyBytes += len(data)
        limit = self.site.max_request_body
        if limit and self.bodyBytes > limit:
            if self._early is not None:
                self._early = None
                self._prepare(*self._head)
            handler = self.handler
            self.handler = _DISCARD
            if handler is _DISCARD:
                respond_with_error(self, 413)
            else:
                handler.bodyTooLarge()
            return
        if self._early is not None:
            self._early.append(data)
        else:
            self.handler.bodyReceived(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._early is not None:
            self.dispatchBody()
        self.bodyComplete = True
        if self._dispatched:
            self.handler.bodyFinished()
        else:
            self._dispatch(command, path, version)

    def _prepare(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        Set the request's state from its request line.
        """
        self._dispatched = True
        self.method = command
        self.uri = path
        self.clientproto = version
        self.args = {}
        self.site = self.channel.site
        self.started = self.site.reactor.seconds()
        self.request_id = self._requestID(self.connection.trusted)

    def _dispatch(self, command: bytes, path: bytes, version: bytes) -> None:
        self._prepare(command, path, version)
        site = self.site
        status = self._checkTarget()
        if status:
            respond_with_error(self, status, close=True)
            return
        allowed = site.allowed_methods
        if allowed and self.method not in allowed:
            self.responseHeaders.setRawHeaders(b"Allow", [site.allow_header])
            respond_with_error(self, 405)
            return
        limit = site.max_request_body
        if limit and self.bodyLength is not None and self.bodyLength > limit:
            respond_with_error(self, 413)
            return

        # The root resources are leaves that route on the whole path (see
        # txrevproxy.routing.router), so twisted.web's segment list is not needed.
        self.prepath = []
        self.postpath = []
        if site.filters:
            run_filters(self, site.filters, self._route)
        else:
            self._route()

    def _route(self) -> None:
        """
        Hand the request to the resource tree.
        """
        try:
            self.renderLeaf(self.site.getResourceFor(self))
        except Exception:
            self.log.failure(
                "error while routing {uri!r} (request id {request_id})",
                uri=self.uri,
                request_id=self.request_id.decode("ascii"),
            )
            respond_with_error(self, 500)

    def renderLeaf(self, resource) -> None:
        """
        Let a leaf resource answer: it returns L{server.NOT_DONE_YET} and
        answers in its own time, or returns the whole body.
        """
        body = resource.render(self)
        if body is not server.NOT_DONE_YET:
            self.setHeader(b"Content-Length", b"%d" % (len(body),))
            self.write(body)
            self.finish()

    def holdWrites(self) -> Optional[Callable[[], None]]:
        """
        Hold the response's writes (see L{ProxyChannel.holdWrites}).

        @return: what releases them, or L{None} when nothing is held.
        """
        channel = self.channel
        if channel is None:
            return None
        channel.holdWrites()
        return channel.releaseWrites

    def requestedUpgrade(self) -> Optional[bytes]:
        """
        The protocol this request asks to switch to (such as
        C{b"websocket"}), or L{None}.
        """
        if not self.requestHeaders.hasHeader(b"upgrade"):
            return None
        return requested_upgrade(
            self.method,
            self.clientproto,
            [
                (name, value)
                for name, values in self.requestHeaders.getAllRawHeaders()
                for value in values
            ],
        )

    def _requestID(self, trusted: bool) -> bytes:
        """
        A trusted proxy's X-Request-ID, or a new random one.
        """
        if trusted:
            given = self.requestHeaders.getRawHeaders(b"x-request-id")
            if given and _valid_request_id(given[-1]):
                return given[-1]
        return new_request_id()

    def _checkTarget(self) -> int:
        """
        Check the request target and Host (RFC 9112 section 3.2); set
        L{path} and, for an absolute-form target, the Host it names.

        @return: 0 when acceptable, or the status to answer with.
        """
        uri = self.uri
        hosts = self.requestHeaders.getRawHeaders(b"host")
        if hosts is None:
            if self.clientproto == b"HTTP/1.1":
                return 400
        elif len(hosts) != 1 or not _HOST.match(hosts[0]):
            return 400
        if self.method == b"CONNECT":
            return 405
        if uri[:1] == b"/":
            self.path = uri.split(b"?", 1)[0]
            return 0
        if uri == b"*" and self.method == b"OPTIONS":
            self.path = b"/"
            return 0
        scheme, sep, rest = uri.partition(b"://")
        if sep and scheme.lower() in (b"http", b"https"):
            authority, slash, remainder = rest.partition(b"/")
            authority, query, after = authority.partition(b"?")
            if not authority or b"@" in authority:
                return 400
            origin_form = slash + remainder
            if query:
                origin_form += b"?" + after
            if not origin_form.startswith(b"/"):
                origin_form = b"/" + origin_form
            self.uri = origin_form
            self.path = origin_form.split(b"?", 1)[0]
            # The target's authority overrides any Host header (RFC 9112
            # section 3.2.2).
            self.requestHeaders.setRawHeaders(b"host", [authority])
            return 0
        return 400

    def closeIfBodyPending(self) -> None:
        """
        Called before a response head is written: if the request body has
        not been read to its end, the connection closes after the response
        (the rest of the body cannot be told apart from a next request), and
        the head says so.
        """
        if not self.bodyComplete:
            self.closeAfterResponse()

    def closeAfterResponse(self) -> None:
        """
        Close the client connection once this response is written, and say
        so in its head.
        """
        if self.channel is not None:
            self.channel.persistent = False
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def writeResponseHead(
        self, code: int, reason: bytes, headers: List[Header], length: Optional[int]
    ) -> None:
        """
        Write a backend's response head straight to the client.

        This is twisted.web's C{Request.write} head logic without its
        L{Headers} round trip: the headers come from the backend already
        validated (token names, no CR, LF or NUL in values) and filtered,
        so they are written as they are, in their order.  Request state
        (C{startedWriting}, C{chunked}) is kept as C{write} and C{finish}
        expect it.

        @param length: the body length when the head carries the framing
            (a Content-Length, or a response that has no body); L{None}
            when the body is chunked to an HTTP/1.1 client, or delimited by
            the connection closing for an HTTP/1.0 one.
        """
        self.code = code
        self.code_message = reason
        self.startedWriting = 1
        version = self.clientproto
        if version != b"HTTP/1.1":
            version = b"HTTP/1.0"
        parts = [version, b" %d " % (code,), reason, b"\r\n"]
        for name, value in headers + self.addedResponseHeaders(headers):
            parts += (name, b": ", value, b"\r\n")
        channel = self.channel
        if not self.bodyComplete:
            channel.persistent = False
        if version == b"HTTP/1.1" and not channel.persistent:
            parts.append(b"Connection: close\r\n")
        no_body = self.method == b"HEAD" or code in NO_BODY_CODES
        if length is None and not no_body and version == b"HTTP/1.1":
            parts.append(b"Transfer-Encoding: chunked\r\n")
            self.chunked = 1
        self.truncationVisible = length is not None or self.chunked
        parts.append(b"\r\n")
        channel.writeSequence(parts)
        if no_body:
            self.write = ignore_data

    def addedResponseHeaders(self, headers: List[Header]) -> List[Header]:
        """
        What the proxy adds to a backend's response head unless the backend
        sent it: Strict-Transport-Security (on a listener with C{hsts}),
        X-Request-ID, and Date (RFC 9110 section 6.6.1: a recipient with a
        clock adds Date to a response it forwards without one).
        """
        has_date = has_request_id = has_hsts = False
        for name, _ in headers:
            lname = name.lower()
            if lname == b"date":
                has_date = True
            elif lname == b"x-request-id":
                has_request_id = True
            elif lname == b"strict-transport-security":
                has_hsts = True
        added = []
        hsts = self.site.hsts
        if hsts is not None and not has_hsts:
            added.append((b"Strict-Transport-Security", hsts))
        if not has_request_id:
            added.append((b"X-Request-ID", self.request_id))
        if not has_date:
            added.append((b"Date", http_date(self.site.reactor.seconds())))
        return added

    def finish(self) -> None:
        if not self.startedWriting:
            self.closeIfBodyPending()
        elif not self.bodyComplete and self.channel is not None:
            self.channel.persistent = False
        super().finish()

    def backendChosen(self, backend) -> None:
        """
        Called by the exchange with each backend it tries, for the logs and
        metrics.
        """
        self.backend = backend
        self._chosenAt = self.site.reactor.seconds()

    def backendAnswered(self) -> None:
        """
        Called by the exchange when the chosen backend's response head
        arrived.
        """
        self.upstream_time = self.site.reactor.seconds() - self._chosenAt

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        self.handler.clientGone()
        if self._dispatched and not self.finished:
            # Logged and counted too, as nginx does (499: the client went
            # before any answer).
            if not self.startedWriting:
                self.code = 499
            self.site.log(self)


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
            request.handler = _DISCARD
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
            self._transferDecoder = ChunkedDecoder(
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


class ProxySite(server.Site):
    """
    The site of one listener.

    @ivar max_request_body: request body limit in bytes (0: none).
    @ivar channels: the open HTTP/1.1 connections.
    @ivar h2_connections: the open HTTP/2 connections.
    @ivar scheme: C{b"http"} or C{b"https"}, as the backend is told in
        X-Forwarded-Proto.
    @ivar hsts: the Strict-Transport-Security value added to responses that
        do not carry one, or L{None}.
    @ivar client_subject_header: the header that carries the verified
        client certificate subject to the backend (mutual TLS), or L{None}.
    @ivar filters: the listener's filters (L{txrevproxy.interfaces.IFilter}),
        run on every request before routing.
    @ivar proxy_protocol: connections start with a PROXY protocol header
        (read by the endpoint's wrapper), so the client is known only once
        the first bytes are in.
    @ivar stats: the listener's L{ListenerStats}.
    @ivar observe: called with each finished request (access log and
        metrics; see L{txrevproxy.observe.requests}), or L{None}.
    """

    protocol = ProxyChannel
    requestFactory = ProxyRequest

    def __init__(
        self,
        resource,
        *,
        reactor,
        settings: ServerSettings,
        scheme: bytes = b"http",
        hsts: Optional[bytes] = None,
        client_subject_header: Optional[bytes] = None,
        filters: Tuple = (),
        proxy_protocol: bool = False,
        stats: Optional[ListenerStats] = None,
        observe: Optional[Callable[[ProxyRequest], None]] = None,
    ) -> None:
        # No timeout for twisted.web: its idle timer is a new call on the
        # reactor for every request, where the sweep (see
        # _closeSlowClients) checks every connection once a second.
        super().__init__(resource, reactor=reactor, timeout=None)
        self.keepalive_timeout = settings.keepalive_timeout
        self.filters = tuple(filters)
        self.proxy_protocol = proxy_protocol
        self.stats = ListenerStats() if stats is None else stats
        self.observe = observe
        self.max_request_body = settings.max_request_body
        self.max_request_line = settings.max_request_line
        self.max_headers = settings.max_headers
        self.max_header_size = settings.max_header_size
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.min_body_bytes = max(1, int(settings.min_body_rate * settings.body_timeout))
        self.max_connections_per_ip = settings.max_connections_per_ip
        self.max_requests_per_connection = settings.max_requests_per_connection
        self._connections_by_ip: Dict[bytes, int] = {}
        self.allowed_methods = frozenset(
            m.encode("ascii") for m in settings.allowed_methods
        )
        self.allow_header = b", ".join(sorted(self.allowed_methods))
        self.channels: Set[ProxyChannel] = set()
        self.h2_connections: Set = set()
        self._sweeper: Optional[LoopingCall] = None
        self.scheme = scheme
        self.hsts = hsts
        self.client_subject_header = client_subject_header
        self._trusted_networks = settings.trusted_proxies
        self._trust: Dict[Optional[str], bool] = {}

    def count_connection(self, address: bytes, change: int) -> None:
        """
        Count a connection from C{address} opening (C{+1}) or closing
        (C{-1}), for C{max_connections_per_ip}.
        """
        counts = self._connections_by_ip
        count = counts.get(address, 0) + change
        if count > 0:
            counts[address] = count
        else:
            counts.pop(address, None)

    def connection_count(self, address: bytes) -> int:
        """
        The open connections from C{address}.
        """
        return self._connections_by_ip.get(address, 0)

    def startFactory(self) -> None:
        super().startFactory()
        self._sweeper = LoopingCall(self._closeSlowClients)
        self._sweeper.clock = self.reactor
        self._sweeper.start(min(1.0, self.header_timeout), now=False)

    def stopFactory(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        super().stopFactory()

    def _closeSlowClients(self) -> None:
        """
        Answer 408 to every client that has been sending one request head
        for longer than C{header_timeout}, or sends a body slower than
        C{min_body_rate} (see L{ProxyChannel.checkBodyRate}), and close the
        connections idle for longer than C{keepalive_timeout}.  One sweep
        a second over the open connections costs less than a timer per
        request.
        """
        now = self.reactor.seconds()
        too_early = now - self.header_timeout
        keepalive = self.keepalive_timeout
        window = self.body_timeout
        for channel in list(self.channels):
            started = channel.headStarted
            if started is not None and started <= too_early:
                channel.reject(408)
            elif channel.isIdle():
                overdue = now - channel.idleSince - keepalive
                if overdue >= 0:
                    channel.closeIdle(overdue)
            elif window:
                channel.checkBodyRate(now, window, self.min_body_bytes)

    def closeIdleConnections(self) -> int:
        """
        Close the connections that carry no request now, and have those that
        do close after their current response (a graceful shutdown, or a
        listener a reload removed).  Called again until none is busy, since
        a request may start on a connection in the meantime.

        @return: how many connections are still busy.
        """
        busy = 0
        for channel in list(self.channels):
            if channel.requests:
                channel.persistent = False
                busy += 1
            else:
                channel.transport.loseConnection()
        for connection in list(self.h2_connections):
            if connection.streams:
                busy += 1
            else:
                connection.transport.loseConnection()
        return busy

    def abortConnections(self) -> None:
        """
        Close every connection at once: a graceful shutdown ran out of time.
        """
        for connection in list(self.channels) + list(self.h2_connections):
            connection.transport.abortConnection()

    def is_trusted(self, host: Optional[str]) -> bool:
        """
        Whether a peer address is a trusted proxy; remembered per address,
        since the same few peers connect again and again.
        """
        trusted = self._trust.get(host)
        if trusted is None:
            trusted = False
            if host is not None and self._trusted_networks:
                try:
                    address = ipaddress.ip_address(host)
                except ValueError:
                    pass
                else:
                    trusted = any(address in net for net in self._trusted_networks)
            if len(self._trust) < 10000:
                self._trust[host] = trusted
        return trusted

    def log(self, request) -> None:
        """
        Called by twisted.web as a request finishes (and by L{ProxyRequest}
        when its client went first).  Not twisted.web's log file, which
        costs about half the throughput: the access log comes with its own
        buffered writer.
        """
        observe = self.observe
        if observe is not None:
            observe(request)
