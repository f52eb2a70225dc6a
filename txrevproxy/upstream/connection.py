"""
The client side of one backend connection: an HTTP/1.1 protocol that carries
one exchange at a time and goes back to its pool when an exchange ends
cleanly.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..http.response_parser import ResponseParseError, ResponseParser
from ..net.direct_send import direct_writer
from ..net.read_size import set_read_size


class UpstreamProtocol(Protocol):
    """
    One keep-alive HTTP/1.1 connection to a backend.

    The exchange that owns the connection for the moment (see
    L{txrevproxy.forward.exchange.ProxyExchange}) writes the request through
    L{sendHead}, L{sendBody} and L{finishBody}, and receives the response
    through the C{IResponseSink} methods it implements.  When a response
    ends cleanly after the whole request was sent, the connection returns
    to its pool; otherwise it is closed.

    @ivar reused: whether this connection already carried an exchange, so
        that a failure before any response byte may be the backend closing
        an idle connection (and worth one retry on a fresh one).
    @ivar idle_since: when the connection last went idle, for the pool's
        sweeper.
    """

    log = Logger()

    def __init__(self, pool) -> None:
        self.pool = pool
        self.reused = False
        self.idle_since = 0.0
        self.exchange = None
        self._parser = ResponseParser(self)
        self._chunked_body = False
        self._body_done = True
        self._lost = False
        self._response_timer = None
        self._awaiting_response = False

    def connectionMade(self) -> None:
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
    ) -> None:
        """
        Start an exchange: write the request head.

        @param body: C{None} when the request has no body, C{b"chunked"} when
            its body is chunk-encoded on the way, or anything else when it
            is framed by Content-Length.
        @param upgrade: whether the request asks to switch protocols.
        """
        self.exchange = exchange
        self._chunked_body = body == b"chunked"
        self._body_done = body is None
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
        self._body_done = True

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
        because the client went away or a timeout expired.
        """
        self.exchange = None
        self.transport.abortConnection()

    # Responses -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        exchange = self.exchange
        release = None
        if exchange is not None:
            if not self._parser.started:
                exchange.responseStarted()
            # What the client is sent of this read goes in one write.
            release = exchange.holdWrites()
        try:
            self._parser.feed(data)
        except ResponseParseError as e:
            self.log.warn(
                "invalid response from backend {backend}: {error}",
                backend=self.pool.name,
                error=str(e),
            )
            exchange = self.exchange
            self.exchange = None
            self.transport.abortConnection()
            if exchange is not None:
                exchange.upstreamFailed(Failure(e))
        finally:
            if release is not None:
                release()

    def responseHead(self, status, reason, headers, length) -> None:
        if self.exchange is not None:
            self.exchange.responseHead(status, reason, headers, length)

    def responseBody(self, data: bytes) -> None:
        if self.exchange is not None:
            self.exchange.responseBody(data)

    def responseUpgraded(self, rest: bytes) -> None:
        """
        The backend switched protocols: this connection now belongs to the
        exchange's tunnel and never returns to the pool.
        """
        if self.exchange is not None:
            self.exchange.responseUpgraded(rest)

    def tunnelData(self, data: bytes) -> None:
        if self.exchange is not None:
            self.exchange.tunnelData(data)

    def responseEnd(self, reusable: bool) -> None:
        """
        The response is complete.  The connection goes back to the pool
        (or is closed) before the exchange hears of it, so that the next
        request, which finishing this one may dispatch at once, can reuse
        it.  A backend that answered before reading the whole request body
        is left with an unknown part of it: that connection is closed.
        """
        exchange = self.exchange
        self.exchange = None
        if self._lost:
            pass
        elif reusable and self._body_done:
            self.reused = True
            self.pool.release(self)
        else:
            self.transport.loseConnection()
        if exchange is not None:
            exchange.responseEnd()

    def connectionLost(self, reason: Failure = None) -> None:
        self._lost = True
        if self._response_timer is not None:
            self._response_timer.cancel()
            self._response_timer = None
        self.pool.lost(self)
        completed = self._parser.feed_eof()
        exchange = self.exchange
        self.exchange = None
        if exchange is not None and not completed:
            exchange.upstreamFailed(reason)
