"""
The client side of one backend connection: an HTTP/1.1 protocol that carries
one exchange at a time and goes back to its pool when an exchange ends
cleanly.

Its life is a state machine, as Twisted's C{HTTP11ClientProtocol} and h11
keep theirs: L{UpstreamProtocol.state} is one of the constants below, and
these are all its transitions::

    IDLE            sendHead, no request body     -> AWAITING
    IDLE            sendHead, with a body         -> SENDING
    SENDING         finishBody                    -> AWAITING
    SENDING         response head                 -> EARLY_RESPONSE
    EARLY_RESPONSE  finishBody                    -> READING
    AWAITING        response head                 -> READING
    READING         101 Switching Protocols       -> TUNNEL
    READING         response end, reusable        -> IDLE (to the pool)
    READING         response end, not reusable    -> CLOSED
    EARLY_RESPONSE  response end                  -> CLOSED
    any             abort, close, invalid bytes   -> CLOSED
    any             connection lost               -> CLOSED

Bytes the backend sends while the connection is IDLE are invalid: no
request asked for them, so the connection is dropped rather than reused.
The response timer (L{UpstreamProtocol.awaitResponse}) is not a state: the
exchange starts and stops it, and it lapses when it comes due with no
exchange on the connection.  Nor are the timeouts after the response
started: each read sets L{UpstreamProtocol.read_seen}, and the pool's
sweep (L{txrevproxy.upstream.deadlines}) does the rest.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..http.response_parser import IResponseSink, ResponseParseError, ResponseParser
from ..net.direct_send import direct_writer
from ..net.endpoint_unwrap import deliver_directly
from ..net.read_size import set_read_size

# The states of an UpstreamProtocol, compared by identity.
#: No exchange: a new connection, or one back in its pool.
IDLE = "IDLE"
#: The request head is sent and its body is on its way; no response head yet.
SENDING = "SENDING"
#: The whole request is sent; the response head has not (all) arrived.
AWAITING = "AWAITING"
#: The response head arrived while the request body was still on its way
#: (a backend that answers early, such as with a 413); the body goes on.
EARLY_RESPONSE = "EARLY_RESPONSE"
#: The whole request is sent and the response head arrived: reading the body.
READING = "READING"
#: The backend switched protocols: raw bytes for the exchange's tunnel.
TUNNEL = "TUNNEL"
#: Closed, or being closed: the connection carries no exchange any more.
CLOSED = "CLOSED"


@implementer(IResponseSink)
class UpstreamProtocol(Protocol):
    """
    One keep-alive HTTP/1.1 connection to a backend; see the module
    docstring for its states.

    The exchange that owns the connection for the moment (an
    L{txrevproxy.interfaces.IUpstreamExchange}, such as
    L{txrevproxy.forward.exchange.ProxyExchange}) writes the request through
    L{sendHead}, L{sendBody} and L{finishBody}, and hears of the response
    through that interface.  When a response ends cleanly after the whole
    request was sent, the connection returns to its pool; otherwise it is
    closed.

    @ivar state: where the connection is in its life (read it, never set
        it from outside): L{IDLE}, L{SENDING}, L{AWAITING},
        L{EARLY_RESPONSE}, L{READING}, L{TUNNEL} or L{CLOSED}.
    @ivar exchange: the exchange carried; L{None} exactly when the state is
        L{IDLE} or L{CLOSED} (except while L{connectionLost} tells it).
    @ivar reused: whether this connection already carried an exchange, so
        that a failure before any response byte may be the backend closing
        an idle connection (and worth one retry on a fresh one).
    @ivar idle_since: when the connection last went idle, for the pool's
        sweeper.
    @ivar read_seen: whether the backend sent bytes since the deadline
        sweep last looked (a flag, so that a read costs no clock read).
    @ivar read_at: when the deadline sweep last saw L{read_seen} set.
    @ivar proxy_header: the PROXY protocol header the connection began
        with, or L{None}: it serves only requests with the same one.
    """

    log = Logger()

    # Class defaults, which saves setting them on every connection.
    state = IDLE
    #: Whether the exchange under way is the connection's last (L{sendHead}).
    _last = False
    exchange = None
    reused = False
    idle_since = 0.0
    read_seen = False
    read_at = 0.0
    proxy_header: Optional[bytes] = None
    #: Whether the request body is chunk-encoded on the way.
    _chunked_body = False
    #: The one timer of all the connection's exchanges (see awaitResponse).
    _response_timer = None
    #: Whether the exchange awaits the response under that timer.
    _awaiting_response = False

    def __init__(self, pool) -> None:
        self.pool = pool
        self._parser = ResponseParser(self)

    def connectionMade(self) -> None:
        deliver_directly(self)
        set_read_size(self.transport)
        self._send = direct_writer(self.transport)
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    # Requests -----------------------------------------------------------

    def sendHead(
        self,
        exchange,
        head: bytes,
        head_request: bool,
        body: Optional[bytes],
        upgrade: bool = False,
        last: bool = False,
    ) -> None:
        """
        Start an exchange on an L{IDLE} connection: write the request head.

        @param body: C{None} when the request has no body, C{b"chunked"} when
            its body is chunk-encoded on the way, or anything else when it
            is framed by Content-Length.
        @param upgrade: whether the request asks to switch protocols.
        @param last: close the connection after this response instead of
            putting it back in the pool, as after a body on a method that
            defines none (a backend that ignores such a body would read it
            as the start of the next request).
        """
        self.exchange = exchange
        self._last = last
        if body is None:
            self.state = AWAITING
            self._chunked_body = False
        else:
            self.state = SENDING
            self._chunked_body = body == b"chunked"
        self._parser.expect(head_request, upgrade)
        self._send(head)

    def sendBody(self, data: bytes) -> None:
        """
        Write some request body bytes (chunk-encoding them if need be).
        """
        if self._chunked_body:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._send(data)

    def finishBody(self) -> None:
        """
        The request body is complete.
        """
        if self._chunked_body:
            self._send(b"0\r\n\r\n")
        state = self.state
        if state is SENDING:
            self.state = AWAITING
        elif state is EARLY_RESPONSE:
            self.state = READING

    def awaitResponse(self, clock, timeout: float) -> None:
        """
        The request is sent: if no response byte arrives within C{timeout}
        seconds, the exchange hears C{responseTimedOut}.

        The connection keeps one timer for all its exchanges and pushes it
        back for each: moving a pending call later is an assignment, where
        a new call and its cancellation are two operations on the reactor's
        heap per request.  A timer that comes due when nothing is awaited
        just lapses.
        """
        self._awaiting_response = True
        timer = self._response_timer
        if timer is None:
            self._response_timer = clock.callLater(timeout, self._responseTimedOut)
        else:
            timer.reset(timeout)

    def stopAwaiting(self) -> None:
        """
        The response started, or the exchange ended: no timeout any more.
        """
        self._awaiting_response = False

    def _responseTimedOut(self) -> None:
        self._response_timer = None
        exchange = self.exchange
        if self._awaiting_response and exchange is not None:
            self._awaiting_response = False
            exchange.responseTimedOut()

    def abort(self) -> None:
        """
        Drop the connection and whatever exchange it carries, for example
        because the client went away or a timeout expired.  What is left of
        a read being parsed reaches nobody, and the connection never goes
        back to its pool.
        """
        if self.state is IDLE:
            # In the pool's idle list: leave it now, not when the loss is
            # reported, so that no request takes it in between.
            self.pool.lost(self)
        self.exchange = None
        self.state = CLOSED
        self.transport.abortConnection()

    def close(self) -> None:
        """
        Close the connection once what is written is sent: the pool does
        this with an idle connection it does not keep.
        """
        self.state = CLOSED
        self.transport.loseConnection()

    # Responses -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.read_seen = True
        state = self.state
        if state is READING or state is EARLY_RESPONSE:
            # What the client is sent of this read goes in one write.
            release = self.exchange.holdWrites()
        elif state is AWAITING or state is SENDING:
            exchange = self.exchange
            # Not started again after an interim (1xx) response that
            # ended with the last read.
            if not self._parser.started:
                exchange.responseStarted()
            release = exchange.holdWrites()
        elif state is TUNNEL:
            # The tunnel writes to the client itself.
            self.exchange.tunnelData(data)
            return
        else:
            # IDLE, where the parser refuses bytes no request asked for, or
            # CLOSED by this side in the middle of a read.
            release = None
        try:
            self._parser.feed(data)
        except ResponseParseError as e:
            self._invalidResponse(e)
        finally:
            if release is not None:
                release()

    def _invalidResponse(self, error: ResponseParseError) -> None:
        """
        The backend broke the protocol: the connection cannot be trusted.
        """
        self.log.warn(
            "invalid response from backend {backend}: {error}",
            backend=self.pool.name,
            error=str(error),
        )
        exchange = self.exchange
        self.abort()
        if exchange is not None:
            exchange.upstreamFailed(Failure(error))

    def responseHead(self, status, reason, headers, length) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.state = EARLY_RESPONSE if self.state is SENDING else READING
        exchange.responseHead(status, reason, headers, length)

    def responseBody(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.responseBody(data)

    def responseUpgraded(self, rest: bytes) -> None:
        """
        The backend switched protocols: this connection now belongs to the
        exchange's tunnel and never returns to the pool.
        """
        exchange = self.exchange
        if exchange is not None:
            self.state = TUNNEL
            exchange.responseUpgraded(rest)

    def tunnelData(self, data: bytes) -> None:
        # The parser's, for bytes fed to it after a 101; in the TUNNEL
        # state, dataReceived hands them to the exchange itself.
        exchange = self.exchange
        if exchange is not None:
            exchange.tunnelData(data)

    def responseEnd(self, reusable: bool) -> None:
        """
        The response is complete.  The connection goes back to the pool
        (or is closed) before the exchange hears of it, so that the next
        request, which finishing this one may dispatch at once, can reuse
        it.  A backend that answered before reading the whole request body
        (L{EARLY_RESPONSE}) is left with an unknown part of it: that
        connection is closed.
        """
        exchange = self.exchange
        self.exchange = None
        state = self.state
        if state is READING and reusable and not self._last:
            self.state = IDLE
            self.reused = True
            self.pool.release(self)
        elif state is not CLOSED:
            self.close()
        if exchange is not None:
            exchange.responseEnd()

    def connectionLost(self, reason: Failure = None) -> None:
        self.state = CLOSED
        if self._response_timer is not None:
            self._response_timer.cancel()
            self._response_timer = None
        self.pool.lost(self)
        # A close-delimited response ends here, and its exchange hears
        # responseEnd; any other exchange still carried failed.
        completed = self._parser.feed_eof()
        exchange = self.exchange
        self.exchange = None
        if exchange is not None and not completed:
            exchange.upstreamFailed(reason)
