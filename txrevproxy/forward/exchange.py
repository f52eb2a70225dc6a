"""
One client request carried to a backend, and its response carried back.

L{ProxyExchange} is the hot path.  It links a L{ProxyRequest} (the client
side, a C{twisted.web} request) and an L{UpstreamProtocol} (the backend
side) and moves bytes between them with flow control both ways: a slow
client pauses the backend read, and a backend that stops reading an upload
pauses the client read.  It also turns every failure into the right answer:
502 when the backend refuses or breaks, 504 when it does not answer in
time, an aborted client connection when the backend dies after part of the
response was sent (never a truncated body that looks complete).
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..filters.chain import (
    filter_response_head,
    write_transformed,
    write_transformed_end,
)
from ..http.headers import client_response_headers, upgrade_response_headers
from ..http.response_parser import ResponseParseError
from ..server.answers import abort_response, reason_phrase, respond_with_error
from ..upstream.balancer import (
    ABANDONED,
    BROKEN,
    CONNECT_FAILED,
    SUCCESS,
    TIMEOUT,
    NoBackendAvailable,
)
from .tunnel import Tunnel

#: Request body bytes held while the backend connection is being set up,
#: beyond which the client is paused.
_PENDING_BODY_LIMIT = 64 * 1024

#: Methods whose request may be sent again after a backend broke the
#: connection without answering (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS = frozenset(
    [b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"]
)


@implementer(IPushProducer)
class _UploadThrottle:
    """
    Registered on the backend transport during an upload: when the backend
    stops reading (its transport's buffer is full), stop reading the client.
    """

    def __init__(self, request) -> None:
        self._request = request
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True
        self._request.pauseReading()

    def resumeProducing(self) -> None:
        self.paused = False
        self._request.resumeReading()

    def stopProducing(self) -> None:
        self.paused = False


@implementer(IPushProducer)
class ProxyExchange:
    """
    The life of one proxied request; see the module docstring.

    It is registered as the streaming producer of the client response, so
    the client transport's flow control reaches the backend read.

    A request that fails on a backend before any response byte arrived is
    tried on another backend, up to the upstream's C{retries} and within
    its retry budget, when sending it again is safe: always when nothing
    was sent (the connection failed), and when the request has no body and
    an idempotent method if the backend broke the connection after the
    request was sent.  A request body is streamed, not kept, so a request
    with a body is only ever retried when none of it was sent.
    """

    log = Logger()
    _transform = None

    # Rarely changed from these class defaults, which saves setting them on
    # every exchange.
    #: The Deferred of a lease being waited for in the balancer's queue.
    _waiting = None
    #: Whether a response byte arrived from the current backend.
    _answered = False
    #: The response status, once the head arrived.
    _status = 0
    #: The backends this request failed on, once it is retried.
    _tried: Optional[List] = None

    def __init__(self, request, target) -> None:
        self.request = request
        self.target = target
        self._lease = None
        self._upstream = None
        self._head = b""
        self._body_framing: Optional[bytes] = None
        self._pending: List[bytes] = []
        self._pending_size = 0
        self._client_paused = False
        self._throttle: Optional[_UploadThrottle] = None
        self._responding = False
        self._retried = False
        self._upgrade: Optional[bytes] = None
        self._tunnel: Optional[Tunnel] = None
        self._done = False
        request.handler = self

    def start(self) -> None:
        """
        Pick a backend and begin.
        """
        request = self.request
        if not request.bodyComplete:
            length = request.bodyLength
            self._body_framing = b"chunked" if length is None else b"%d" % (length,)
        else:
            self._upgrade = request.requestedUpgrade()
        balancer = self.target.balancer
        lease = balancer.lease_now(request)
        if lease is not None:
            self._leased(lease)
            return
        d = balancer.acquire(request)
        d.addCallbacks(self._leased, self._failBeforeResponse)
        if not d.called:
            self._waiting = d

    # Getting a connection --------------------------------------------------

    def _leased(self, lease) -> None:
        self._waiting = None
        if self._done:
            lease.release(ABANDONED)
            return
        self._lease = lease
        self.request.backendChosen(lease.backend)
        self._head = self.target.request_head(
            self.request, lease.backend.server, self._body_framing, self._upgrade
        )
        self._useConnection(lease.backend.pool)

    def _useConnection(self, pool) -> None:
        connection = pool.take_idle()
        if connection is not None:
            self._connected(connection)
        else:
            pool.connect().addCallbacks(self._connected, self._connectFailed)

    def _connectFailed(self, reason: Failure) -> None:
        # Nothing was sent, so any request may go to another backend.
        self._retryOrFail(reason, CONNECT_FAILED, True)

    def _connected(self, upstream) -> None:
        if self._done:
            upstream.pool.release(upstream)
            return
        self._upstream = upstream
        upstream.sendHead(
            self,
            self._head,
            self.request.method == b"HEAD",
            self._body_framing,
            self._upgrade is not None,
        )
        if self._body_framing is None:
            self._startResponseTimer()
            return
        for chunk in self._pending:
            upstream.sendBody(chunk)
        self._pending = []
        self._pending_size = 0
        if self.request.bodyComplete:
            self._finishUpload()
        else:
            self._throttle = _UploadThrottle(self.request)
            upstream.transport.registerProducer(self._throttle, True)
        if self._client_paused:
            self._client_paused = False
            self.request.resumeReading()

    # The request body (called by ProxyRequest) ------------------------------

    def bodyReceived(self, data: bytes) -> None:
        """
        Some request body bytes arrived from the client.
        """
        if self._done:
            return
        upstream = self._upstream
        if upstream is not None:
            upstream.sendBody(data)
            if self._throttle is not None and self._throttle.paused:
                # The client transport may have been resumed by the HTTP
                # channel; keep it paused while the backend is not reading.
                self.request.pauseReading()
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _PENDING_BODY_LIMIT and not self._client_paused:
            self._client_paused = True
            self.request.pauseReading()

    def bodyFinished(self) -> None:
        """
        The client's request body is complete.
        """
        if self._upstream is not None and not self._done:
            self._finishUpload()

    def bodyTooLarge(self) -> None:
        """
        The request body went over the configured limit mid-stream.
        """
        if self._responding:
            self._abortClient(ABANDONED)
        else:
            self._end(abort_upstream=True, outcome=ABANDONED)
            respond_with_error(self.request, 413)

    def _finishUpload(self) -> None:
        upstream = self._upstream
        if self._throttle is not None:
            upstream.transport.unregisterProducer()
            self._throttle = None
        upstream.finishBody()
        if not self._responding:
            self._startResponseTimer()

    def _startResponseTimer(self) -> None:
        self._upstream.awaitResponse(self.target.clock, self.target.response_timeout)

    def responseTimedOut(self) -> None:
        """
        The backend did not start its response in time (called by the
        L{UpstreamProtocol}).
        """
        self._end(abort_upstream=True, outcome=TIMEOUT)
        respond_with_error(self.request, 504)

    # The response (called by UpstreamProtocol) ------------------------------

    def responseStarted(self) -> None:
        """
        The first response byte arrived: the backend is answering.
        """
        self._answered = True
        self._upstream.stopAwaiting()

    def holdWrites(self):
        """
        Hold the client writes of what the backend sent in one read (see
        L{ProxyRequest.holdWrites}); returns what releases them, or
        L{None}.
        """
        return self.request.holdWrites()

    def responseHead(self, status, reason, headers, length) -> None:
        request = self.request
        request.backendAnswered()
        self._responding = True
        self._status = status
        passed_on = client_response_headers(headers, length is not None)
        if self.target.response_rules is not None:
            passed_on = self.target.response_rules.apply(passed_on, request)
        if status == 101:
            passed_on += upgrade_response_headers(headers)
        set_cookie = self._lease.set_cookie
        if set_cookie is not None:
            passed_on.append((b"Set-Cookie", set_cookie))
        if request.response_filters:
            passed_on, length, self._transform = filter_response_head(
                request, status, passed_on, length
            )
        request.writeResponseHead(
            status, reason or reason_phrase(status), passed_on, length
        )
        if status != 101:
            request.registerProducer(self, True)

    def responseUpgraded(self, rest: bytes) -> None:
        """
        The backend switched protocols: splice the two connections.
        """
        # The tunnel writes to the client transport itself: the 101 head
        # goes first.
        self.request.channel.releaseWrites()
        self._tunnel = Tunnel(
            self.request.channel,
            self._upstream,
            self.target.clock,
            self.target.tunnel_idle_timeout,
            on_close=self._end,
        )
        if rest:
            self._tunnel.fromBackend(rest)

    def tunnelData(self, data: bytes) -> None:
        self._tunnel.fromBackend(data)

    def responseBody(self, data: bytes) -> None:
        if self._transform is None:
            self.request.write(data)
        else:
            write_transformed(self.request, self._transform, data)

    def responseEnd(self) -> None:
        request = self.request
        if self._transform is not None:
            write_transformed_end(request, self._transform)
        if not request.bodyComplete:
            # The backend answered before the upload ended; the protocol
            # closes that connection, and the client's connection closes
            # after this response (ProxyRequest.finish sees to it).
            self._upstream = None
        self._end()
        request.unregisterProducer()
        request.finish()

    def upstreamFailed(self, reason: Failure) -> None:
        """
        The backend connection failed during the exchange.
        """
        if self._done:
            return
        if self._tunnel is not None:
            self._tunnel.backendClosed()
            return
        upstream = self._upstream
        self._upstream = None
        if self._responding:
            self.log.info(
                "backend {backend} failed mid-response: {reason}",
                backend=upstream.pool.name if upstream else "?",
                reason=reason.getErrorMessage(),
            )
            self._abortClient(BROKEN)
            return
        if (
            upstream is not None
            and upstream.reused
            and self._body_framing is None
            and not self._retried
        ):
            # Most likely the backend closed this idle connection as we
            # reused it; a request without a body is safe to send again.
            self._retried = True
            self._stopResponseTimeout()
            self._useConnection(upstream.pool)
            return
        self._retryOrFail(
            reason,
            BROKEN,
            not self._answered
            and self._body_framing is None
            and self.request.method in IDEMPOTENT_METHODS,
        )

    def _retryOrFail(self, reason: Failure, outcome: str, safe: bool) -> None:
        """
        The current backend failed before answering: report it, and try
        another backend when that is C{safe} and allowed, else answer the
        client with the error.
        """
        if self._done:
            return
        self._stopResponseTimeout()
        lease = self._lease
        self._lease = None
        lease.release(outcome)
        balancer = self.target.balancer
        tried = self._tried
        if (
            safe
            and (0 if tried is None else len(tried)) < balancer.retries
            and balancer.may_retry()
        ):
            if tried is None:
                tried = self._tried = []
            tried.append(lease.backend)
            self._answered = False
            balancer.acquire(self.request, tried).addCallbacks(
                self._leased, self._noBackendToRetry, errbackArgs=(reason,)
            )
            return
        self._failBeforeResponse(reason)

    def _noBackendToRetry(self, unused: Failure, reason: Failure) -> None:
        """
        No other backend can take the retry: answer with the error of the
        attempt that failed.
        """
        self._failBeforeResponse(reason)

    def _failBeforeResponse(self, reason: Failure) -> None:
        self._waiting = None
        if self._done:
            return
        if reason.check(NoBackendAvailable):
            self._end()
            respond_with_error(
                self.request, 503, retry_after=reason.value.retry_after
            )
            return
        if reason.check(ConnectTimeoutError):
            code = 504
        else:
            code = 502
            if not reason.check(ResponseParseError):
                self.log.info(
                    "backend request failed: {reason}", reason=reason.getErrorMessage()
                )
        self._end()
        respond_with_error(self.request, code)

    # Flow control of the response (IPushProducer) ---------------------------

    def pauseProducing(self) -> None:
        if self._upstream is not None:
            self._upstream.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self._upstream is not None:
            self._upstream.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.clientGone()

    # Endings ---------------------------------------------------------------

    def clientGone(self) -> None:
        """
        The client connection closed: abandon the backend exchange, so the
        backend connection is neither leaked nor put back half-used.
        """
        if not self._done:
            self._end(abort_upstream=True, outcome=ABANDONED)

    def _abortClient(self, outcome: str) -> None:
        self._end(abort_upstream=True, outcome=outcome)
        abort_response(self.request)

    def _stopResponseTimeout(self) -> None:
        if self._upstream is not None:
            self._upstream.stopAwaiting()

    def _end(self, abort_upstream: bool = False, outcome: str = SUCCESS) -> None:
        """
        Mark the exchange over and give the backend lease back.

        @param abort_upstream: drop the backend connection too, because it
            is in the middle of an exchange that will not complete.
        @param outcome: what the lease reports to the balancer.
        """
        self._done = True
        self._stopResponseTimeout()
        # The request and this exchange point at each other; breaking the
        # cycle lets reference counting free both at once instead of
        # leaving them to the cyclic garbage collector, whose full passes
        # show up as latency spikes.  The request falls back to its class
        # default handler, which drops whatever still arrives.
        self.request.releaseHandler()
        upstream = self._upstream
        self._upstream = None
        if abort_upstream and upstream is not None:
            upstream.abort()
        if self._lease is not None:
            self._lease.release(outcome, self._status)
            self._lease = None
        elif self._waiting is not None:
            # Leave the balancer's queue.
            waiting = self._waiting
            self._waiting = None
            waiting.cancel()
