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
from typing import Dict, List, Optional, Tuple

from twisted.logger import Logger
from twisted.web import http, server

from ..config.model import ServerSettings
from .errors import respond_with_error
from .headers import connection_tokens, http_date, requested_upgrade

Header = Tuple[bytes, bytes]
NO_BODY_CODES = frozenset([204, 304])

_MAX_REQUEST_ID = 200


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


def _ignore(data: bytes) -> None:
    """
    Drop bytes: the C{write} of a response that has no body (HEAD, 204,
    304), and what a channel does with data from a client it gave up on.
    """


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
    @ivar request_id: the ID sent to the backend, returned to the client and
        shown on error pages.
    @ivar truncationVisible: whether the response's framing (a length, or
        chunking) lets the client see that a body was cut short.
    @ivar error_pages: the pages of the route that took the request, by
        status (see L{respond_with_error}), or L{None}.
    """

    log = Logger()
    handler = _DISCARD
    bodyLength: Optional[int] = 0
    bodyComplete = False
    request_id = b"-"
    truncationVisible = False
    error_pages = None
    _dispatched = False
    _bodyReceived = 0

    def headersReceived(
        self, command: bytes, path: bytes, version: bytes, length: Optional[int]
    ) -> None:
        """
        All headers are in and a body of C{length} bytes (L{None}: chunked)
        follows: route the request now so that its body can stream.
        """
        self.bodyLength = length
        self._dispatch(command, path, version)

    def handleContentChunk(self, data: bytes) -> None:
        self._bodyReceived += len(data)
        limit = self.site.max_request_body
        if limit and self._bodyReceived > limit:
            handler = self.handler
            self.handler = _DISCARD
            if handler is _DISCARD:
                respond_with_error(self, 413)
            else:
                handler.bodyTooLarge()
            return
        self.handler.bodyReceived(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self.bodyComplete = True
        if self._dispatched:
            self.handler.bodyFinished()
        else:
            self._dispatch(command, path, version)

    def _dispatch(self, command: bytes, path: bytes, version: bytes) -> None:
        self._dispatched = True
        self.method = command
        self.uri = path
        self.clientproto = version
        self.args = {}
        channel = self.channel
        site = channel.site
        self.site = site
        self.request_id = self._requestID(channel.trusted)

        status = self._checkTarget()
        if status:
            respond_with_error(self, status, close=True)
            return
        limit = site.max_request_body
        if limit and self.bodyLength is not None and self.bodyLength > limit:
            respond_with_error(self, 413)
            return

        # The root resources are leaves that route on the whole path (see
        # txrevproxy.routing), so twisted.web's segment list is not needed.
        self.prepath = []
        self.postpath = []
        try:
            self.renderLeaf(site.getResourceFor(self))
        except Exception:
            self.log.failure("error while routing {uri!r}", uri=self.uri)
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
        return b"%016x" % (random.getrandbits(64),)

    def _checkTarget(self) -> int:
        """
        Check the request target and Host (RFC 9112 section 3.2); set
        L{path} and, for an absolute-form target, the Host it names.

        @return: 0 when acceptable, or the status to answer with.
        """
        uri = self.uri
        hosts = self.requestHeaders.getRawHeaders(b"host")
        if (hosts is not None and len(hosts) != 1) or (
            hosts is None and self.clientproto == b"HTTP/1.1"
        ):
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
        if not self.bodyComplete and self.channel is not None:
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
        has_date = has_request_id = has_hsts = False
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
            lname = name.lower()
            if lname == b"date":
                has_date = True
            elif lname == b"x-request-id":
                has_request_id = True
            elif lname == b"strict-transport-security":
                has_hsts = True
        hsts = self.site.hsts
        if hsts is not None and not has_hsts:
            parts += (b"Strict-Transport-Security: ", hsts, b"\r\n")
        if not has_request_id:
            parts += (b"X-Request-ID: ", self.request_id, b"\r\n")
        if not has_date:
            # RFC 9110 section 6.6.1: a recipient with a clock adds Date to
            # a response it forwards without one.
            parts += (b"Date: ", http_date(self.site.reactor.seconds()), b"\r\n")
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
            self.write = _ignore

    def finish(self) -> None:
        if not self.startedWriting:
            self.closeIfBodyPending()
        elif not self.bodyComplete and self.channel is not None:
            self.channel.persistent = False
        super().finish()

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        self.handler.clientGone()


class ProxyChannel(http.HTTPChannel):
    """
    An HTTP/1.1 server connection that streams request bodies.

    @ivar client_ip: the peer address, as bytes.
    @ivar trusted: whether the peer is one of C{[server] trusted_proxies}.
    """

    client_ip = b""
    trusted = False
    _client_subject: object = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._client_subject = _UNREAD
        self._peer = self.transport.getPeer()
        self._host = self.transport.getHost()
        host = getattr(self._peer, "host", None)
        self.client_ip = host.encode("ascii") if host else b"unix"
        self.trusted = self.site.is_trusted(host)

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

    def checkPersistence(self, request, version: bytes) -> bool:
        """
        Whether the connection stays open after this request: HTTP/1.1
        unless a Connection header lists C{close} (a comma-separated list
        that may span several header lines, RFC 9110 section 7.6.1; Twisted's
        own check reads only the first line's first word).
        """
        tokens = connection_tokens(request.requestHeaders.getRawHeaders(b"connection"))
        if version == b"HTTP/1.1" and b"close" not in tokens:
            return True
        if version == b"HTTP/1.1":
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        self.persistent = self.checkPersistence(request, self._version)
        if self.length == 0:
            # No body: Twisted's path dispatches it from allContentReceived.
            return
        request.headersReceived(self._command, self._path, self._version, self.length)
        expect = request.requestHeaders.getRawHeaders(b"expect")
        if (
            expect
            and expect[0].lower() == b"100-continue"
            and self._version == b"HTTP/1.1"
            and not request.startedWriting
        ):
            # RFC 9110 section 10.1.1: the proxy satisfies the expectation
            # itself (it strips Expect) once it is willing to read the body.
            self._send100Continue()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """
        Answer 400 and parse nothing more from this client: a transport
        may still deliver bytes after loseConnection (TLS waits for its
        closing exchange), and those must not be read as a next request.
        """
        super()._respondToBadRequestAndDisconnect()
        self.dataReceived = self.lineReceived = self.rawDataReceived = _ignore

    def allContentReceived(self) -> None:
        if not self.requests:
            # The response ended before the request body did; the
            # connection is closing (see ProxyRequest.finish).
            return
        super().allContentReceived()


class ProxySite(server.Site):
    """
    The site of one listener.

    @ivar max_request_body: request body limit in bytes (0: none).
    @ivar scheme: C{b"http"} or C{b"https"}, as the backend is told in
        X-Forwarded-Proto.
    @ivar hsts: the Strict-Transport-Security value added to responses that
        do not carry one, or L{None}.
    @ivar client_subject_header: the header that carries the verified
        client certificate subject to the backend (mutual TLS), or L{None}.
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
    ) -> None:
        super().__init__(resource, reactor=reactor, timeout=settings.keepalive_timeout)
        self.max_request_body = settings.max_request_body
        self.scheme = scheme
        self.hsts = hsts
        self.client_subject_header = client_subject_header
        self._trusted_networks = settings.trusted_proxies
        self._trust: Dict[Optional[str], bool] = {}

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
        No per-request log through twisted.web's log file: it costs about
        half the throughput.  The access log comes with its own buffered
        writer.
        """
