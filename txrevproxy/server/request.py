"""
The request of the client side: a C{twisted.web} request whose body
streams to its handler instead of being read whole first.

L{ProxyRequest} is dispatched as soon as its head is in when a body
follows, and passes each body chunk on to its C{handler} (the exchange
that forwards it, see L{txrevproxy.forward.exchange}) as it arrives.
"""

from __future__ import annotations

import random
import re
from binascii import hexlify
from typing import Callable, List, Optional, Sequence, Tuple

from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

from ..http.headers import (
    connection_tokens,
    http_date,
    requested_upgrade,
    serialize_head,
)
from ..interfaces import IProxiedRequest, IRequestHandler
from ..net.http_request import StreamingRequest
from .answers import respond_with_error

Header = Tuple[bytes, bytes]
NO_BODY_CODES = frozenset([204, 304])
#: The framing fields of a response head written to the client.
_CONNECTION_CLOSE = (b"Connection", b"close")
_CHUNKED = (b"Transfer-Encoding", b"chunked")
#: The digits of the status codes a backend sends, made once: formatting
#: an integer with C{%d} for each response costs more than a lookup.
_STATUS_DIGITS = {code: b"%d" % (code,) for code in range(100, 600)}

_MAX_REQUEST_ID = 200

#: A Host field value (RFC 9110 section 7.2): a registered name or an IP
#: literal, then an optional port.
#: Where the authority of an absolute-form target ends.
_AUTHORITY_END = re.compile(rb"[/?]")

_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?\Z"
)


@implementer(IRequestHandler)
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


DISCARD = _Discard()


#: The request ID of a request not dispatched yet.
NO_REQUEST_ID = b"-"


def new_request_id() -> bytes:
    """
    A random request ID: 16 hex digits, 64 random bits as 8 bytes in hex
    (less than half the time of formatting the integer with C{%016x} on
    CPython).
    """
    return hexlify(random.getrandbits(64).to_bytes(8, "big"))


def _valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= _MAX_REQUEST_ID and all(33 <= c < 127 for c in value)


@implementer(IProxiedRequest)
class ProxyRequest(StreamingRequest):
    """
    A request that is dispatched as soon as its headers are complete when a
    body follows, and whose body streams to L{handler}.

    The modules a request passes through record what they decided with its
    methods: the router with L{routed}, the filter chain with
    L{passedFilters}, the forwarding resource with L{useErrorPages}, the
    exchange with L{releaseHandler}.

    @ivar handler: the L{IRequestHandler} that receives C{bodyReceived},
        C{bodyFinished}, C{bodyTooLarge} and C{clientGone}.
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
    @ivar error_cause: why the proxy failed the request, when it did (it
        answered with its own 5xx, or cut the response short): a word such
        as C{"refused"}, C{"connect_timeout"} or C{"maintenance"}, for the
        error log (see L{txrevproxy.observe.requests}); L{None} otherwise.
    @ivar error_detail: what the failure said (C{"Connection was
        refused by other side: 111"}), or C{""}.
    @ivar ended: when its answer was written, for a request whose log
        line waited for its client (see L{txrevproxy.server.halfclose});
        L{None} otherwise: it is logged as it ends.
    @ivar split_side: the upstream a split route chose for it (see
        L{txrevproxy.routing.split}), or L{None}.
    @ivar client_address: the client's address as filters see it, worked
        out on first use by L{txrevproxy.filters.client.client_address},
        which keeps it here; L{None} until then.
    @ivar trace: the request's L{txrevproxy.observe.tracing.RequestTrace}
        when its site traces requests, else L{None}.
    @ivar logged_uri: the target as logs write it when a filter found a
        secret in it (a C{jwt} token in the query), or L{None}: the target
        itself.
    """

    log = Logger()
    handler = DISCARD
    bodyLength: Optional[int] = 0
    bodyComplete = False
    request_id = NO_REQUEST_ID
    truncationVisible = False
    timed_out = None
    error_pages = None
    started = 0.0
    ended: Optional[float] = None
    router = None
    route_index: Optional[int] = None
    backend = None
    upstream_time: Optional[float] = None
    error_cause: Optional[str] = None
    error_detail = ""
    logged_uri: Optional[bytes] = None
    _chosenAt = 0.0
    _dispatched = False
    bodyBytes = 0
    _early: Optional[List[bytes]] = None
    response_filters: Tuple = ()
    readingPaused = False
    client_address: Optional[str] = None
    trace = None
    split_side: Optional[str] = None

    def __init__(self, channel, *args, **kwargs) -> None:
        super().__init__(channel, *args, **kwargs)
        # Kept for the whole life of the request: twisted.web forgets its
        # channel when the client goes, and the access log and the metrics
        # still need the connection's facts then.
        self.connection = channel

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
        if self.disconnected:
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
            self.handler = DISCARD
            if handler is DISCARD:
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
        tracing = self.site.tracing
        if tracing is not None:
            self.trace = tracing.begin(self)

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
        # txrevproxy.routing.router), so twisted.web's segment list is not
        # needed, and the root is what Site.getResourceFor would find with
        # no segment to walk: taken here without its copy of the path.
        self.prepath = []
        self.postpath = []
        self.sitepath = []
        self.renderLeaf(site.resource)

    def renderLeaf(self, resource) -> None:
        """
        Let a leaf resource answer: it returns L{server.NOT_DONE_YET} and
        answers in its own time, or returns the whole body.  A resource
        that raises gets a 500, and the failure is logged; this holds for
        the leaves a filter chain renders later (see
        L{txrevproxy.filters.chain.FilteredResource}) as for the root.
        """
        try:
            body = resource.render(self)
        except Exception:
            self.log.failure(
                "error while routing {uri!r} (request id {request_id})",
                uri=self.logged_uri or self.uri,
                request_id=self.request_id.decode("ascii"),
            )
            respond_with_error(self, 500, cause="internal_error")
            return
        if body is not server.NOT_DONE_YET:
            self.setHeader(b"Content-Length", b"%d" % (len(body),))
            self.write(body)
            self.finish()

    def routed(self, router, index: int) -> None:
        """
        C{router} chose its route at C{index} for this request (for the
        access log and the metrics).
        """
        self.router = router
        self.route_index = index

    def passedFilters(self, filters: Sequence) -> None:
        """
        The request passed C{filters}, which see its response head after
        the ones it passed before.
        """
        if filters:
            self.response_filters = tuple(self.response_filters) + tuple(filters)

    def useErrorPages(self, pages) -> None:
        """
        Answer errors with the pages of the route that took the request (by
        status, see L{respond_with_error}) instead of the proxy's own.
        """
        self.error_pages = pages

    def releaseHandler(self) -> None:
        """
        The exchange is over: the request falls back to its class default
        handler, which drops whatever body still arrives.  The request and
        its exchange pointed at each other; breaking the cycle lets
        reference counting free both at once instead of leaving them to
        the cyclic garbage collector.
        """
        self.__dict__.pop("handler", None)

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
            # The authority ends at the first "/" or "?" (RFC 3986 section
            # 3.2), and is held to the rules of a Host field: it becomes
            # the Host that routes and backends see.
            end = _AUTHORITY_END.search(rest)
            split = len(rest) if end is None else end.start()
            authority, origin_form = rest[:split], rest[split:]
            if not authority or b"@" in authority or not _HOST.match(authority):
                return 400
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
        fields = headers + self.addedResponseHeaders(headers)
        channel = self.channel
        if not self.bodyComplete:
            channel.persistent = False
        if version == b"HTTP/1.1" and not channel.persistent:
            fields.append(_CONNECTION_CLOSE)
        no_body = self.method == b"HEAD" or code in NO_BODY_CODES
        if length is None and not no_body and version == b"HTTP/1.1":
            fields.append(_CHUNKED)
            self.chunked = 1
        self.truncationVisible = length is not None or self.chunked
        digits = _STATUS_DIGITS.get(code) or b"%d" % (code,)
        channel.write(serialize_head(b" ".join((version, digits, reason)), fields))
        if no_body:
            self.bodyless = True

    def addedResponseHeaders(self, headers: List[Header]) -> List[Header]:
        """
        What the proxy adds to a backend's response head unless the backend
        sent it: Strict-Transport-Security (on a listener with C{hsts}),
        X-Request-ID, Date (RFC 9110 section 6.6.1: a recipient with a
        clock adds Date to a response it forwards without one), and the
        proxy's own Server when it has one (the backend's is there only
        when its route passes banners on).
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
        server = self.site.server_header
        if server is not None and not any(
            name.lower() == b"server" for name, _ in headers
        ):
            added.append((b"Server", server))
        return added

    def writeTrailers(self, trailers: List[Header]) -> None:
        """
        End a chunked body with the backend's trailer fields when the
        client said it takes them (C{TE: trailers}, RFC 9110 section
        6.5.1); otherwise they are dropped, which the section allows.
        C{finish} then writes no last chunk of its own.
        """
        if not self.chunked:
            return
        te = self.requestHeaders.getRawHeaders(b"te")
        if te is None or b"trailers" not in connection_tokens(te):
            return
        parts = [b"0\r\n"]
        for name, value in trailers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        self.channel.writeSequence(parts)
        self.chunked = 0

    def finish(self) -> None:
        if not self.startedWriting:
            self.closeIfBodyPending()
        elif not self.bodyComplete and self.channel is not None:
            self.channel.persistent = False
        super().finish()

    def backendChosen(self, backend) -> None:
        """
        Called by the exchange with each backend it tries, for the logs,
        metrics and traces (each try is a client span).
        """
        self.backend = backend
        self._chosenAt = self.site.reactor.seconds()
        trace = self.trace
        if trace is not None:
            trace.attempt(backend.server)

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
            # before any answer), from L{connection}, which outlives the
            # channel twisted.web has just forgotten.
            if not self.startedWriting:
                self.code = 499
            self.site.log(self)
