"""
The client connection: an HTTP/1.1 channel that reads request heads with
the proxy's own reader and streams request bodies.

Every request head is read by L{txrevproxy.http.request_parser}, and the
request is made from what it read: Twisted's line-by-line parser is not
used (a proxy whose heads took two paths would have two to keep safe
from smuggling).  Twisted's own L{HTTPChannel} also reads a whole request
body (into memory or a temporary file) before the resource sees the
request; a proxy must not: L{ProxyChannel} hands a request with a body to
the resource tree as soon as its head is in (see
L{txrevproxy.server.request}), and feeds it the body as it comes.  What
the channel keeps of L{HTTPChannel} is the rest: the responses' writes and
the producer and consumer between the transport and the response.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    ISSLTransport,
)
from zope.interface import implementer

from ..http.chunked import ChunkedDecoder, MalformedChunks
from ..http.headers import connection_tokens, serialize_answer_head
from ..http.length_decoder import LengthDecoder
from ..http.request_head import WITHOUT_SEMANTICS, body_status
from ..http.request_parser import RequestHead, RequestHeadReader
from ..net.delivery import delivery_probe
from ..net.direct_send import send, sends_directly
from ..net.http_channel import HTTPChannelBase
from ..net.http_request import add_fields
from ..net.read_size import set_read_size
from ..net.tls_send import write_now, writes_now
from .answers import connection_answer
from .halfclose import HalfClosedClient
from .request import DISCARD, NO_REQUEST_ID, ProxyRequest, new_request_id

#: A client subject not read yet (L{None} means there is none).
_UNREAD = object()

#: How many bytes the client may send ahead while a response is made
#: before it is not read any more (Twisted's channel had the same bound):
#: what comes meanwhile waits, unparsed.
EAGER_READ_LIMIT = 16384

# The states of a ProxyChannel (see its docstring).
AWAITING_PEER = 0
IDLE = 1
READING_HEAD = 2
DISPATCHING = 3
READING_BODY = 4
RESPONDING = 5
UPGRADED = 6
CLOSING = 7


class ClientConnection:
    """
    What the proxy needs to know of a client connection, learnt once when
    it is made: mixed into the HTTP/1.x and the HTTP/2 server protocols.

    @ivar client_ip: the peer address, as bytes.
    @ivar trusted: whether the peer is one of C{[server] trusted_proxies}.
    @ivar local_port: the port the client connected to (behind the PROXY
        protocol, the one it connected to on the balancer), as decimal
        bytes for X-Forwarded-Port; L{None} off TCP.
    @ivar tls_version: the TLS version of the connection, such as
        C{"TLSv1.3"}, once its handshake completed; L{None} without TLS.
    @ivar watch: the L{HalfClosedClient} that holds the access log lines
        of the requests answered after the client sent a FIN, or L{None}.

    Each connection is counted in its site's C{stats.connections} by
    L{countOpen} and L{countClosed}, and nowhere else: the HTTP/1.x
    channel from the client's connect to its close (a WebSocket tunnel
    included), or, on an HTTP/2 connection, the channel until ALPN chose
    h2 and the HTTP/2 connection from then on.
    """

    # Slots rather than the instance's dict: an idle connection of the
    # thousands a proxy holds costs less (see "Memory of idle connections"
    # in benchmarks/README.rst).
    __slots__ = (
        "site",
        "client_ip",
        "trusted",
        "local_port",
        "tls_version",
        "watch",
        "_client_subject",
        "_counted",
        "_counting",
        "_open",
        "_peer",
        "_host",
    )

    def __init__(self, *args, **kwargs) -> None:
        self.site = None
        self.client_ip = b""
        self.trusted = False
        self.local_port: Optional[bytes] = None
        self.tls_version: Optional[str] = None
        self.watch: Optional[HalfClosedClient] = None
        self._client_subject: object = None
        self._counted = False
        #: Fires once the count of the client's address on every process
        #: is known (C{max_connections_per_ip_store}), when it was not yet.
        self._counting: Optional[Deferred] = None
        self._open = False
        self._peer = None
        self._host = None
        super().__init__(*args, **kwargs)

    def countOpen(self) -> None:
        """
        Count this connection as open in its site's stats.
        """
        self._open = True
        self.site.stats.connections += 1

    def countClosed(self) -> None:
        """
        Count this connection as closed, once: later calls do nothing (an
        HTTP/2 connection is told it is lost on a GOAWAY, then again when
        its transport closes).
        """
        if self._open:
            self._open = False
            self.site.stats.connections -= 1

    def learnPeer(self) -> None:
        """
        Read the peer's facts from the transport; called by
        C{connectionMade}.
        """
        self._client_subject = _UNREAD
        self._peer = self.transport.getPeer()
        self._host, self.local_port = self.site.local_address(self.transport.getHost())
        host = getattr(self._peer, "host", None)
        self.client_ip = host.encode("ascii") if host else b"unix"
        self._admitPeer()

    def _admitPeer(self) -> None:
        """
        Judge the known peer by the site's C{trusted_proxies}, and count it
        against the site's C{max_connections_per_ip}.
        """
        site = self.site
        self.trusted = site.is_trusted(getattr(self._peer, "host", None))
        if site.max_connections_per_ip:
            self._counting = site.count_connection(self.client_ip, 1)
            self._counted = True

    def joinSite(self, site) -> None:
        """
        A reload replaced this connection's site with C{site}: its next
        requests take their settings (limits, trusted proxies, the
        resource tree with the listener's filters) from there.  A request
        in flight keeps the site it started with.
        """
        known = self._peer is not None
        self.forgetPeer()
        old = self.site
        self.site = site
        if self._open and old.stats is not site.stats:
            old.stats.connections -= 1
            site.stats.connections += 1
        if known:
            self._admitPeer()

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


@implementer(IHandshakeListener, IHalfCloseableProtocol)
class ProxyChannel(ClientConnection, HTTPChannelBase):
    """
    An HTTP/1.1 server connection that streams request bodies and reads
    request heads strictly (see L{txrevproxy.http.request_head}): a head
    that breaks RFC 9112 or the site's limits is answered with 400, 405,
    408, 414, 431 or 505, the connection is closed, and nothing of that
    request reaches a backend.  A body on a method that defines none
    (L{txrevproxy.http.request_head.NO_BODY_SEMANTICS}) is refused the same way, or forwarded with the
    connection closed after its answer (C{[server]
    body_without_semantics}).

    What it does with the bytes it reads depends on its L{state}, which
    changes in L{_enter} only:

      - C{AWAITING_PEER}: on a listener with the PROXY protocol, the first
        bytes name the client; then C{IDLE}, or C{CLOSING} over the
        client's connection limit.
      - C{IDLE}: no request, no byte of a head (at first, and after a
        response on a connection that stays open); the site closes the
        connection after C{keepalive_timeout}.  A read that brings part of
        a head starts C{READING_HEAD}; one that brings a whole head goes on
        at once.
      - C{READING_HEAD}: a head is arriving, each line checked as it ends
        (see L{RequestHeadReader}); the site answers 408 after
        C{header_timeout}.  A head without a
        body leads to C{RESPONDING}, one with a body to C{DISPATCHING}.
      - C{DISPATCHING}: the head is in and a body follows; the request is
        routed once what was read with the head is parsed (a malformed
        start of the body is refused first), then C{READING_BODY}.
      - C{READING_BODY}: the body streams to the request's handler, at the
        site's C{min_body_rate}; its end leads to C{RESPONDING}.  The
        response may end first: the body is still read to its end, and
        then the connection is C{CLOSING}.
      - C{RESPONDING}: the request is read whole and its response is being
        made; what the client sends meanwhile waits, unparsed
        (pipelining), and past L{EAGER_READ_LIMIT} bytes the client is not
        read until the response ends.  The response's end leads to C{IDLE}, or to
        C{CLOSING} when the connection does not persist; a switch of
        protocols (a WebSocket) to C{UPGRADED}.
      - C{UPGRADED}: the connection belongs to a tunnel (see
        L{txrevproxy.forward.tunnel}), which receives what the client sends
        and learns when the connection is lost.
      - C{CLOSING}: the proxy gave up on the connection (it answered a head
        it will not read, or ended the last response); what the client
        sends is dropped.  L{reject} leads here from any state.

    @ivar state: one of the states above.
    @ivar headStarted: when the request head being read began: set in
        C{READING_HEAD}, L{None} in every other state.
    @ivar idleSince: when the connection last had no request (it opened,
        or a response ended); the site closes a connection idle for
        C{keepalive_timeout}.
    @ivar readClosed: whether the client closed its sending side (see
        L{readConnectionLost}).
    """

    __slots__ = (
        "state",
        "readClosed",
        "headStarted",
        "idleSince",
        "_reader",
        "_reading",
        "_eagerPaused",
        "_served",
        "_bodyRequest",
        "_bodyHead",
        "_decoder",
        "_bodyWindow",
        "_held",
        "_tunnel",
        "_direct",
    )

    # Twisted's factory sets it on each instance; the site times
    # connections out with its own sweep (see ProxySite._closeSlowClients).
    timeOut = None

    def __init__(self) -> None:
        self.state = IDLE
        self.readClosed = False
        self.headStarted: Optional[float] = None
        self.idleSince = 0.0
        self._reader: Optional[RequestHeadReader] = None
        self._reading = False
        self._eagerPaused = False
        self._served = 0
        self._bodyRequest: Optional[ProxyRequest] = None
        self._bodyHead: Optional[RequestHead] = None
        self._decoder = None
        self._bodyWindow: Optional[Tuple[float, int]] = None
        self._held: Optional[List[bytes]] = None
        self._tunnel = None
        self._direct = None
        super().__init__()

    # Twisted's factory sets these two on each instance; read from the
    # site, they cost an idle connection nothing.

    @property
    def callLater(self):
        """
        What Twisted's timeouts schedule their calls with: the site's
        reactor's C{callLater}.
        """
        return self.site.reactor.callLater

    @property
    def requestFactory(self):
        """
        What Twisted's channel makes each request with: the site's.
        """
        return self.site.requestFactory

    def _enter(self, state: int) -> None:
        """
        Move to C{state}: the one place the state changes.
        """
        self.state = state
        if state is READING_HEAD:
            self.headStarted = self.site.reactor.seconds()
        else:
            self.headStarted = None

    def connectionMade(self) -> None:
        super().connectionMade()
        set_read_size(self.transport)
        # How a write leaves when nothing is held: at once, as one system
        # call on plain TCP, as one record and one system call on TLS
        # (rather than through the TLS transport's end-of-turn flush: the
        # channel joins its writes itself, see holdWrites).
        if sends_directly(self.transport):
            self._direct = send
        elif writes_now(self.transport):
            self._direct = write_now
        site = self.site
        if site.proxy_protocol:
            # The client is named by the PROXY header, which comes with the
            # first bytes.
            self._enter(AWAITING_PEER)
        else:
            self.learnPeer()
        self._takeLimits()
        self.idleSince = site.reactor.seconds()
        site.channels.add(self)
        self.countOpen()
        counting, self._counting = self._counting, None
        if counting is not None and self.state is IDLE:
            # Nothing is read (nor, over TLS, handshaken) until the
            # address's connections on the other processes are known.
            self.transport.pauseProducing()
            counting.addCallback(self._countKnown)
        else:
            self._refuseOverLimit()

    def _countKnown(self, _) -> None:
        if self._open:
            self.transport.resumeProducing()
            self._refuseOverLimit()

    def _refuseOverLimit(self) -> None:
        """
        Answer 429 to a connection one too many for its address, before its
        first request; over TLS, once the handshake is done (see
        L{handshakeCompleted}).
        """
        if (
            self.state is IDLE
            and not ISSLTransport.providedBy(self.transport)
            and self.overConnectionLimit()
        ):
            self.reject(429)

    def handshakeCompleted(self) -> None:
        """
        Over C{max_connections_per_ip}, a TLS client is answered once its
        handshake is done: an answer written before would only break the
        handshake (the client saw a reset).  A client that chose C{h2} is
        refused by its HTTP/2 connection instead (see
        L{txrevproxy.server.http2.ProxyH2Connection.refusing}).
        """
        super().handshakeCompleted()
        if (
            self.state is IDLE
            and getattr(self.transport, "negotiatedProtocol", None) != b"h2"
            and self.overConnectionLimit()
        ):
            self.reject(429)

    def _takeLimits(self) -> None:
        """
        Read the heads from now by the site's limits.
        """
        limits = self.site.head_limits
        if self._reader is None:
            self._reader = RequestHeadReader(limits)
        else:
            self._reader.limits = limits

    def joinSite(self, site) -> None:
        self.site.channels.discard(self)
        super().joinSite(site)
        site.channels.add(self)
        self._takeLimits()

    def connectionLost(self, reason) -> None:
        self.countClosed()
        if self.watch is not None:
            # Before the requests still open are logged: they are not held.
            self.watch.lost(reason)
        if self.state is UPGRADED:
            self.site.tunnels.discard(self)
            self._tunnel.connectionLost(reason)
            return
        self.site.channels.discard(self)
        self.forgetPeer()
        super().connectionLost(reason)

    def readConnectionLost(self) -> None:
        """
        The client sent a FIN (L{IHalfCloseableProtocol}): it sends nothing
        more, which does not mean it is gone.  A client that sent its whole
        request and then half-closed (C{shutdown(SHUT_WR)}) still reads: a
        request being answered (C{RESPONDING}, and requests pipelined
        behind it) is answered, and the connection is closed after the
        last answer (see L{requestDone}).  A client that closed its socket
        sent the same FIN; the difference shows once it is sent something,
        which a L{HalfClosedClient} watches for where the platform tells
        (L{delivery_probe}): the answered requests are logged with their
        status or 499 once it knows.  Elsewhere they are logged at once,
        and a client that left shows only when a write to it fails: the
        connection is lost then, and a request not answered yet is logged
        with 499.

        In any other state nothing can be answered any more (no request, a
        head or a body cut short, a tunnel): the connection is closed, as
        Twisted does on a read EOF without this interface.
        """
        self.readClosed = True
        if self.watch is not None and self.state is not UPGRADED:
            # Told again each time reading resumes after an answer: the
            # watch closes the connection once it knows.
            return
        if self.state is not RESPONDING:
            self.transport.loseConnection()
            return
        probe = delivery_probe(self.transport)
        if probe is not None:
            self.watch = HalfClosedClient(self, probe, self.site.reactor)

    def writeConnectionLost(self) -> None:
        """
        The proxy never closes only its sending side; should it happen,
        the connection is over.
        """
        self.transport.loseConnection()

    def requestDone(self, request) -> None:
        """
        A response ended: the connection is idle from now, unless a
        pipelined request was waiting behind it.
        """
        self.idleSince = self.site.reactor.seconds()
        if self.state is RESPONDING:
            self._enter(IDLE if self.persistent else CLOSING)
        if request is not self.requests[0]:
            raise TypeError(request)
        del self.requests[0]
        self.stopAnswering()
        if self._eagerPaused or request.readingPaused:
            # Twisted's channel resumed its transport after every request;
            # only what was paused is resumed here (a call into the
            # reactor less per request).
            self._eagerPaused = False
            self.resumeReadingClient()
        if not self.persistent:
            self.loseConnection()
        elif self.state is IDLE and self._reader.buffered():
            # What came behind the request is read now; part of a head
            # has its time counted from now.
            self._readHeads()
        if self.readClosed and self.state is not RESPONDING:
            # The client half-closed, and every request it sent whole is
            # answered (see readConnectionLost).
            if self.watch is not None:
                self.watch.answered()
            else:
                self.transport.loseConnection()

    def headArriving(self) -> None:
        """
        Bytes of a first request head are in, held by the protocol in
        front of this channel until the head is whole (see
        L{txrevproxy.server.http2.PriorKnowledgeChannel}): the head's
        C{header_timeout} counts from now.
        """
        if self.state is IDLE:
            self._enter(READING_HEAD)

    def isIdle(self) -> bool:
        """
        Whether the connection carries no request, and no head has started.
        """
        return not self.requests and self.state is not READING_HEAD

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

    def switchProtocol(self, protocol) -> bytes:
        """
        The connection became a tunnel (see L{txrevproxy.forward.tunnel}),
        which owns it from now on: it is no longer an HTTP connection of
        the site's but one of its tunnels, which a graceful shutdown waits
        for (the tunnel closes it on its own timeout, or at the shutdown
        deadline).

        @return: the bytes the client sent after the request that switched,
            which the channel held unparsed while it answered: the
            tunnel's first.
        """
        # It stays counted open (see countOpen) until it closes, but not
        # against max_connections_per_ip.
        self.site.channels.discard(self)
        self.site.tunnels.add(self)
        self.forgetPeer()
        self._tunnel = protocol
        self._enter(UPGRADED)
        protocol.makeConnection(self.transport)
        return self._reader.take()

    def dataReceived(self, data: bytes) -> None:
        state = self.state
        if state is RESPONDING:
            # Pipelining: held until the response ends (see requestDone).
            reader = self._reader
            reader.feed(data)
            if not self._eagerPaused and reader.buffered() > EAGER_READ_LIMIT:
                self._eagerPaused = self.pauseReadingClient()
            return
        if state is READING_BODY or state is DISPATCHING:
            self._readBody(data)
            return
        if state is UPGRADED:
            self._tunnel.dataReceived(data)
            return
        elif state is CLOSING:
            return
        elif state is AWAITING_PEER:
            self.learnPeer()
            if self.overConnectionLimit():
                self.reject(429)
                return
            self._enter(READING_HEAD)
        # Idle, the connection is READING_HEAD only if this read does not
        # bring a whole head (see _readHeads).
        self._reader.feed(data)
        self._readHeads()

    def _readHeads(self) -> None:
        """
        Read the heads waiting, a request at a time: each is answered
        before the next is read.  A request answered at once (an error
        page, a redirect) leaves the connection idle, and the loop reads
        on; it runs once, however many requests its responses end.  Part
        of a head read while idle starts C{READING_HEAD}.
        """
        if self._reading:
            return
        self._reading = True
        reader = self._reader
        try:
            while True:
                head = reader.read()
                if head is None:
                    if self.state is IDLE and reader.buffered():
                        self._enter(READING_HEAD)
                    return
                if head.__class__ is int:
                    self.reject(head)
                    return
                self._startRequest(head)
                if self.state is not IDLE:
                    return
        finally:
            self._reading = False

    def _startRequest(self, head: RequestHead) -> None:
        """
        Make the request of a head read whole, and start it: a request
        without a body is answered at once, one with a body once its
        first bytes are read (see L{ProxyRequest.headersReceived}).
        """
        site = self.site
        request = site.requestFactory(self)
        self.requests.append(request)
        add_fields(request.requestHeaders, head.fields)
        self.persistent = self.checkPersistence(request, head.version)
        length = head.length
        if length == 0:
            self._enter(RESPONDING)
            self.startAnswering()
            request.requestReceived(head.method, head.target, head.version)
            return
        # A body where the method defines none: some backends read it,
        # others take it for the next request (RFC 9110 section 9.3).
        # Refused, or forwarded with nothing after it on this connection.
        status = body_status(head.method, site.refuse_body_without_semantics)
        if status > 0:
            self.reject(status)
            return
        if status == WITHOUT_SEMANTICS:
            request.closeAfterResponse()
        if length is None:
            self._decoder = ChunkedDecoder(request.handleContentChunk, self._bodyEnded)
        else:
            self._decoder = LengthDecoder(
                length, request.handleContentChunk, self._bodyEnded
            )
        request.headersReceived(head.method, head.target, head.version, length)
        self._bodyRequest = request
        self._bodyHead = head
        self._enter(DISPATCHING)
        body = self._reader.take()
        if body:
            self._readBody(body)
        if self.state is not DISPATCHING:
            return
        # Everything read so far is parsed, and the body's first bytes (if
        # any came) were well formed: route the request now.
        self._enter(READING_BODY)
        request.dispatchBody()
        expect = request.requestHeaders.getRawHeaders(b"expect")
        if (
            expect
            and expect[0].lower() == b"100-continue"
            and request.clientproto == b"HTTP/1.1"
            and not request.bodyComplete
            and not request.startedWriting
        ):
            # RFC 9110 section 10.1.1: the proxy satisfies the expectation
            # itself (it strips Expect) once it is willing to read the body.
            self.sendContinue()

    def _readBody(self, data: bytes) -> None:
        """
        Hand the body's decoder the next bytes; a malformed body is
        answered 400.
        """
        try:
            self._decoder.dataReceived(data)
        except MalformedChunks:
            self.reject(400)

    def _bodyEnded(self, rest: bytes) -> None:
        """
        The request body ended; C{rest}, what followed it, waits until the
        response ends.
        """
        head = self._bodyHead
        self._bodyRequest = self._bodyWindow = self._bodyHead = self._decoder = None
        self._reader.feed(rest)
        if not self.requests:
            # The response ended before the request body did; the
            # connection is closing (see ProxyRequest.finish).
            self._enter(CLOSING)
            return
        self._enter(RESPONDING)
        self.startAnswering()
        self.requests[-1].requestReceived(head.method, head.target, head.version)

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
            self.write(b"".join(held))

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held.append(data)
        elif self._direct is not None:
            self._direct(self.transport, data)
        else:
            self.transport.write(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def writeHeaders(self, version, code, reason, headers) -> None:
        """
        Twisted's own response head (of the answers the proxy makes
        itself, such as error pages), through L{write} so that it keeps
        its place after what is held.
        """
        self.write(serialize_answer_head(version, code, reason, headers))

    def loseConnection(self) -> None:
        # What is held goes before the connection closes.
        self.releaseWrites()
        super().loseConnection()

    def reject(self, status: int) -> None:
        """
        Answer C{status} to a request the proxy will not read any further,
        and close the connection: what follows on it cannot be trusted to
        start a request.  The request's exchange, if it began, is
        abandoned, so its backend connection is dropped, and the answer
        carries its ID (the one its backend and the logs know).
        """
        if self.state is CLOSING:
            return
        self._enter(CLOSING)
        self.persistent = False
        request = self.requests[-1] if self.requests else None
        request_id = None
        if request is not None:
            if request.request_id != NO_REQUEST_ID:
                request_id = request.request_id
            handler = request.handler
            request.handler = DISCARD
            handler.clientGone()
            if request.startedWriting:
                # The middle of a response is no place for an error.
                self.transport.abortConnection()
                return
        site = self.site
        pages = site.error_pages
        # Through write and loseConnection, after what is held: a request
        # pipelined behind one whose response is being written is refused
        # from within that response (see requestDone), which must reach
        # the client first (RFC 9112 section 9.3.2).
        self.write(
            connection_answer(
                status,
                new_request_id() if request_id is None else request_id,
                site.reactor.seconds(),
                site.hsts,
                None if pages is None else pages.get(status),
                site.server_header,
            )
        )
        self.loseConnection()

    def checkPersistence(self, request, version: bytes) -> bool:
        """
        Whether the connection stays open after this request: HTTP/1.1
        unless a Connection header lists C{close} (a comma-separated list
        that may span several header lines, RFC 9110 section 7.6.1; Twisted's
        own check reads only the first line's first word).
        """
        connection = request.requestHeaders.getRawHeaders(b"connection")
        self._served += 1
        limit = self.site.max_requests_per_connection
        if version == b"HTTP/1.1" and (
            connection is None or b"close" not in connection_tokens(connection)
        ):
            if not limit or self._served < limit:
                return True
        if version == b"HTTP/1.1":
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

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
