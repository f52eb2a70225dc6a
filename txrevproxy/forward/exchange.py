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
from ..http.grpc import grpc_timeout
from ..http.headers import client_response_headers, upgrade_response_headers
from ..http.request_head import NO_BODY_SEMANTICS
from ..http.status import reason_phrase
from ..interfaces import IRequestHandler, IUpstreamExchange
from ..server.answers import abort_response, respond_with_error
from ..upstream import deadlines
from ..upstream.balancer import (
    ABANDONED,
    BROKEN,
    CONNECT_FAILED,
    SUCCESS,
    TIMEOUT,
    NoBackendAvailable,
)
from .causes import failure_cause
from .intercept import intercept
from .tunnel import Tunnel

# The states of an exchange (see ProxyExchange), in the order it goes
# through them; a retry goes back to WAITING or CONNECTING.  Plain ints, so
# that a state check is one identity test.

#: No lease yet: not started, in the balancer's queue, or between a failed
#: attempt and the next one.  The exchange holds no lease.
WAITING = 0
#: Leased: a connection to the backend is being taken from its pool or made.
CONNECTING = 1
#: The request head is sent, its body may be streaming, and the response is
#: awaited (the response timer runs once the request is sent).
SENDING = 2
#: Response bytes arrived but not the whole head: nothing reached the client
#: yet, but the backend may have acted on the request.
RECEIVING = 3
#: The response head was passed on (or, in a L{CachingExchange}, kept from
#: the client): its body streams, and a failure can only cut it short.
RESPONDING = 4
#: The backend switched protocols (101): the two connections are spliced.
TUNNELLING = 5
#: Over: the lease is released, and whatever still arrives is ignored.
DONE = 6

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


@implementer(IRequestHandler, IUpstreamExchange, IPushProducer)
class ProxyExchange:
    """
    The life of one proxied request; see the module docstring.

    It is the request's C{handler}, the exchange of its backend
    connection, and the streaming producer of the client response, so the
    client transport's flow control reaches the backend read.

    Its state is L{_state}, one of the module's constants; what may happen
    in each (the transitions to L{DONE} are L{_end}, and its variants
    L{_answerFailure} and L{_abortClient}; a retry is L{_retryOrFail}):

      - L{WAITING}: the lease comes (L{_leased}): L{CONNECTING}; no
        backend can take the request (L{_failBeforeResponse}): 503, 502
        or 504, L{DONE}; the client goes: the wait is cancelled, L{DONE}.
        Body bytes are held.
      - L{CONNECTING}: connected (L{_connected}): L{SENDING}; the
        connection failed: L{WAITING} for a retry, or the error, L{DONE};
        the client goes: L{DONE} (the connection, once made, goes back to
        the pool).  Body bytes are held.
      - L{SENDING}: the first response byte (L{responseStarted}):
        L{RECEIVING}; the response timer (L{responseTimedOut}) or the
        total deadline (L{checkDeadlines}): 504, L{DONE}; the backend fails (L{upstreamFailed}): a new connection
        to the same backend (L{CONNECTING}) when the one reused was
        stale, else L{WAITING} for a retry, or 502, L{DONE}; the body is
        too large: 413, L{DONE}; the client goes: L{DONE}.
      - L{RECEIVING}: the head (L{responseHead}): L{RESPONDING}; the
        backend fails: as in L{SENDING}, but never retried on another
        backend; the read timeout or the total deadline
        (L{checkDeadlines}): 504, L{DONE}.
      - L{RESPONDING}: the end (L{responseEnd}): L{DONE}; a 101
        (L{responseUpgraded}): L{TUNNELLING}; the backend fails, the body
        is too large, or the client goes: the client connection is
        aborted (L{_abortClient}), L{DONE}; the read or send timeout or
        the total deadline (L{checkDeadlines}): the client connection is
        reset, L{DONE}.
      - L{TUNNELLING}: either side closes (the tunnel's C{on_close}):
        L{DONE}.
      - L{DONE}: a connection made late goes back to the pool, and
        everything else is ignored.

    A request that fails on a backend before any response byte arrived is
    tried on another backend, up to the upstream's C{retries} and within
    its retry budget, when sending it again is safe: always when nothing
    was sent (the connection failed), and when the request has no body and
    an idempotent method if the backend broke the connection after the
    request was sent.  A request body is streamed, not kept, so a request
    with a body is only ever retried when none of it was sent.
    """

    log = Logger()

    # Class defaults, which save setting them on every exchange; most are
    # set only by the few exchanges that need them.
    _state = WAITING
    #: The L{Lease} held, from L{CONNECTING} until L{DONE} releases it.
    _lease = None
    #: The backend connection: set in L{SENDING}, L{RECEIVING},
    #: L{RESPONDING} and L{TUNNELLING}.
    _upstream = None
    #: The Deferred of a lease being waited for in the balancer's queue.
    _waiting = None
    #: How the request body is sent: L{None} (no body), C{b"chunked"}, or a
    #: decimal Content-Length.
    _body_framing: Optional[bytes] = None
    #: The protocol the request asks to switch to, if any.
    _upgrade: Optional[bytes] = None
    #: Request body bytes that arrived before the backend connection.
    _pending: Optional[List[bytes]] = None
    _pending_size = 0
    #: Whether the client read is paused because L{_pending} is full.
    _client_paused = False
    #: The producer on the backend transport during an upload.
    _throttle: Optional[_UploadThrottle] = None
    #: Whether a stale reused connection was replaced already.
    _retried = False
    #: The response status, once the head arrived.
    _status = 0
    #: The backends this request failed on, once it is retried.
    _tried: Optional[List] = None
    #: The response filters' body transform, if any.
    _transform = None
    #: The L{Tunnel}, from L{TUNNELLING} on.
    _tunnel: Optional[Tunnel] = None
    #: When the total deadline passes (C{0}: none).
    _deadline = 0.0
    #: The response timeout of a gRPC call with a shorter C{grpc-timeout}
    #: (L{None}: the route's).
    _response_timeout: Optional[float] = None
    #: The backend's trailer fields (HTTP/2 backends), for the client.
    _trailers = None
    #: Since when the client has paused the response, if it has.
    _paused_at: Optional[float] = None
    #: Why the request failed, for the error answer (see
    #: L{txrevproxy.forward.causes}).
    _cause: Optional[str] = None

    def __init__(self, request, target) -> None:
        self.request = request
        self.target = target
        request.handler = self

    def start(self) -> None:
        """
        Pick a backend and begin.
        """
        request = self.request
        if not request.bodyComplete:
            length = request.bodyLength
            self._body_framing = b"chunked" if length is None else b"%d" % (length,)
        elif request.bodyBytes:
            # The whole body came while a filter was deciding (basic_auth
            # checking a hash, forward_auth asking its service): it is held,
            # and handed on once this exchange is the request's handler.
            self._body_framing = b"%d" % (request.bodyBytes,)
        else:
            self._upgrade = request.requestedUpgrade()
        if self.target.total_timeout:
            self._deadline = request.started + self.target.total_timeout
        if request.method == b"POST":
            # A gRPC call is a POST (gRPC over HTTP/2, "Requests"): other
            # requests skip the header lookup.
            grpc_deadline = request.requestHeaders.getRawHeaders(b"grpc-timeout")
            if grpc_deadline is not None:
                self._honourGrpcTimeout(grpc_timeout(grpc_deadline[0]))
        balancer = self.target.balancer
        lease = balancer.lease_now(request)
        if lease is not None:
            self._leased(lease)
            return
        self._queue(balancer)

    def _queue(self, balancer) -> None:
        """
        No backend can take the request now: wait in C{balancer}'s queue.
        """
        d = balancer.acquire(self.request)
        d.addCallbacks(self._leased, self._failBeforeResponse)
        if not d.called:
            self._waiting = d

    def _honourGrpcTimeout(self, seconds: Optional[float]) -> None:
        """
        A gRPC call's C{grpc-timeout} caps the response timeout and the
        total deadline of its request: past it, its client has given up.
        """
        if seconds is None:
            return
        self._response_timeout = min(self.target.response_timeout, seconds)
        deadline = self.request.started + seconds
        if not self._deadline or deadline < self._deadline:
            self._deadline = deadline

    # Getting a connection --------------------------------------------------

    def _leased(self, lease) -> None:
        """
        L{WAITING} to L{CONNECTING}.  A wait is cancelled when the exchange
        ends, so a lease never comes in another state.
        """
        self._waiting = None
        self._lease = lease
        self._state = CONNECTING
        self.request.backendChosen(lease.backend)
        pool = lease.backend.pool
        self._head = self.target.request_head(
            self.request,
            lease.backend.server,
            self._body_framing,
            self._upgrade,
            pool.serialize_head,
        )
        self._useConnection(pool)

    def _useConnection(self, pool) -> None:
        header = None
        if pool.proxy_protocol is not None:
            # The client as this proxy sees it (the PROXY header in, if
            # any), not as X-Forwarded-For says, as HAProxy sends it.
            client = self.request.connection
            header = pool.proxy_header(client.getPeer(), client.getHost())
        connection = pool.take_idle(header)
        if connection is not None:
            self._connected(connection)
        else:
            pool.connect(self.target.connect_timeout, header).addCallbacks(
                self._connected, self._connectFailed
            )

    def _connectFailed(self, reason: Failure) -> None:
        if self._state is CONNECTING:
            # Nothing was sent, so any request may go to another backend.
            self._retryOrFail(reason, CONNECT_FAILED, True)

    def _connected(self, upstream) -> None:
        """
        L{CONNECTING} to L{SENDING}: send the request head, and the body
        bytes held.
        """
        if self._state is not CONNECTING:
            # The exchange ended while the connection was being made.
            upstream.pool.release(upstream)
            return
        self._state = SENDING
        self._upstream = upstream
        request = self.request
        upstream.sendHead(
            self,
            self._head,
            request.method == b"HEAD",
            self._body_framing,
            self._upgrade is not None,
            # A body on a method that defines none: the client connection
            # closes after the answer (txrevproxy.server.channel), and so
            # does this one, so no backend can read it as a next request.
            self._body_framing is not None and request.method in NO_BODY_SEMANTICS,
        )
        if self._body_framing is None:
            self._startResponseTimer()
            return
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._pending_size = 0
            for chunk in pending:
                upstream.sendBody(chunk)
        if request.bodyComplete:
            self._finishUpload()
        else:
            self._throttle = _UploadThrottle(request)
            upstream.transport.registerProducer(self._throttle, True)
        if self._client_paused:
            self._client_paused = False
            request.resumeReading()

    # The request body (IRequestHandler) -------------------------------------

    def bodyReceived(self, data: bytes) -> None:
        """
        Some request body bytes arrived from the client: sent on when
        connected, held before, dropped once L{DONE}.
        """
        upstream = self._upstream
        if upstream is not None:
            upstream.sendBody(data)
            if self._throttle is not None and self._throttle.paused:
                # The client transport may have been resumed by the HTTP
                # channel; keep it paused while the backend is not reading.
                self.request.pauseReading()
            return
        if self._state is DONE:
            return
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _PENDING_BODY_LIMIT and not self._client_paused:
            self._client_paused = True
            self.request.pauseReading()

    def bodyFinished(self) -> None:
        """
        The client's request body is complete: once connected, finish the
        upload (before, L{_connected} does when it sends the body held).
        """
        if self._upstream is not None:
            self._finishUpload()

    def bodyTooLarge(self) -> None:
        """
        The request body went over the configured limit mid-stream.
        """
        if self._state is RESPONDING:
            self._abortClient(ABANDONED)
        else:
            self._end(abort_upstream=True, outcome=ABANDONED)
            respond_with_error(self.request, 413)

    def clientGone(self) -> None:
        """
        The client connection closed: abandon the backend exchange, so the
        backend connection is neither leaked nor put back half-used, and
        leave the balancer's queue if waiting there.
        """
        self._end(abort_upstream=True, outcome=ABANDONED)

    def _finishUpload(self) -> None:
        upstream = self._upstream
        if self._throttle is not None:
            upstream.transport.unregisterProducer()
            self._throttle = None
        upstream.finishBody()
        if self._state is SENDING:
            # The timer counts to the first response byte: not once the
            # backend began answering before the upload ended.
            self._startResponseTimer()

    def _startResponseTimer(self) -> None:
        timeout = self._response_timeout
        self._upstream.awaitResponse(
            self.target.clock,
            self.target.response_timeout if timeout is None else timeout,
        )

    def responseTimedOut(self) -> None:
        """
        The backend did not start its response in time (called by the
        L{UpstreamProtocol}, in L{SENDING}).
        """
        self._timedOut(deadlines.RESPONSE)

    def checkDeadlines(self, now: float, read_at: float) -> None:
        """
        Called about once a second by the backend pool's sweep (see
        L{txrevproxy.upstream.deadlines}) while the exchange is on one of
        its connections, with when the backend was last read.
        """
        kind = deadlines.expired(
            self.target,
            now,
            self._deadline,
            self._paused_at,
            read_at if self._state is RECEIVING or self._state is RESPONDING else None,
        )
        if kind is not None:
            self._timedOut(kind)

    def _timedOut(self, kind: str) -> None:
        """
        L{DONE} on the timeout C{kind}: 504 before the response head, a
        reset client connection after it (a close could pass a truncated
        body for a whole one, and would wait on a client that does not
        read); the backend connection is aborted either way.
        """
        request = self.request
        request.timed_out = kind
        self._cause = kind + "_timeout"
        if self._state is RESPONDING:
            request.error_cause = self._cause
            self._end(abort_upstream=True, outcome=TIMEOUT)
            abort_response(request, reset=True)
        else:
            self._answerFailure(504, TIMEOUT)

    # The response (IUpstreamExchange) ---------------------------------------

    def responseStarted(self) -> None:
        """
        L{SENDING} to L{RECEIVING}: the first response byte arrived, the
        backend is answering.
        """
        self._state = RECEIVING
        self._upstream.stopAwaiting()

    def holdWrites(self):
        """
        Hold the client writes of what the backend sent in one read (see
        L{ProxyRequest.holdWrites}); returns what releases them, or
        L{None}.
        """
        return self.request.holdWrites()

    def responseHead(self, status, reason, headers, length, rewritten=False) -> None:
        """
        L{RECEIVING} to L{RESPONDING}: pass the head on to the client.

        @param rewritten: the route's response rewrite was applied to
            C{headers} already (by a L{CachingExchange}, which stores the
            rewritten response).
        """
        self._state = RESPONDING
        self._status = status
        request = self.request
        request.backendAnswered()
        if request.trace is not None:
            request.trace.answered(status)
        intercepted = self.target.intercept_errors
        if intercepted is not None and status in intercepted:
            self._transform = intercept(self, request, status, headers)
            return
        passed_on = client_response_headers(
            headers, length is not None, self.target.response_skipped
        )
        rewrite = self.target.response_rewrite
        if rewrite is not None and not rewritten:
            passed_on = rewrite.apply(passed_on, request)
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
        L{RESPONDING} to L{TUNNELLING}: the backend switched protocols,
        splice the two connections.
        """
        self._state = TUNNELLING
        # The tunnel writes to the client transport itself: the 101 head
        # goes first.
        self.request.channel.releaseWrites()
        self._tunnel = Tunnel(
            self.request,
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

    def responseTrailers(self, trailers) -> None:
        """
        The backend's trailer fields (an HTTP/2 backend's, such as gRPC's
        C{grpc-status}), passed on after the body.
        """
        self._trailers = trailers

    def responseEnd(self) -> None:
        """
        L{RESPONDING} to L{DONE}: the response is complete.
        """
        request = self.request
        if self._transform is not None:
            write_transformed_end(request, self._transform)
        if not request.bodyComplete:
            # The backend answered before the upload ended; the protocol
            # closes that connection, and the client's connection closes
            # after this response (ProxyRequest.finish sees to it).
            self._upstream = None
        self._end()
        if not request.finished:
            # (An intercepted response was answered with its head.)
            request.unregisterProducer()
            if self._trailers is not None:
                request.writeTrailers(self._trailers)
            request.finish()

    def upstreamFailed(self, reason: Failure) -> None:
        """
        The backend connection failed during the exchange.
        """
        state = self._state
        if state is DONE:
            return
        if state is TUNNELLING:
            self._tunnel.backendClosed()
            return
        upstream = self._upstream
        self._upstream = None
        if state is RESPONDING:
            request = self.request
            request.error_cause = failure_cause(reason)
            request.error_detail = reason.getErrorMessage()
            self._abortClient(BROKEN)
            return
        # SENDING or RECEIVING: nothing reached the client yet.
        if upstream.reused and self._body_framing is None and not self._retried:
            # Most likely the backend closed this idle connection as we
            # reused it; a request without a body is safe to send again.
            self._retried = True
            self._state = CONNECTING
            self._useConnection(upstream.pool)
            return
        self._retryOrFail(
            reason,
            BROKEN,
            state is SENDING
            and self._body_framing is None
            and self.request.method in IDEMPOTENT_METHODS,
        )

    # Retries and failures ---------------------------------------------------

    def _retryOrFail(self, reason: Failure, outcome: str, safe: bool) -> None:
        """
        The current backend failed before answering: give its lease back
        (L{WAITING}), and try another backend when that is C{safe} and
        allowed, else answer the client with the error.
        """
        lease = self._lease
        self._lease = None
        self._state = WAITING
        lease.release(outcome)
        if self.request.trace is not None:
            self.request.trace.attempt_failed(failure_cause(reason))
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
            # A retry never waits in the queue: this fires at once.
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
        """
        In L{WAITING}, no backend answered: answer with the error C{reason}
        calls for.  Also the errback of the balancer's queue, which a
        cancelled wait fails (L{DONE}).
        """
        if self._state is DONE:
            return
        self._waiting = None
        self._cause = failure_cause(reason)
        if reason.check(NoBackendAvailable):
            self._answerFailure(503, retry_after=reason.value.retry_after)
            return
        self.request.error_detail = reason.getErrorMessage()
        if reason.check(ConnectTimeoutError):
            code = 504
            self.request.timed_out = deadlines.CONNECT
        else:
            code = 502
        self._answerFailure(code)

    # Flow control of the response (IPushProducer) ---------------------------

    def pauseProducing(self) -> None:
        if self._upstream is not None:
            self._paused_at = self.target.clock.seconds()
            self._upstream.transport.pauseProducing()

    def resumeProducing(self) -> None:
        upstream = self._upstream
        if upstream is not None:
            self._paused_at = None
            # The read timeout counts again from now, not from before the
            # pause.
            upstream.read_seen = True
            upstream.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.clientGone()

    # Endings: the transitions to DONE ---------------------------------------

    def _answerFailure(
        self, code: int, outcome: str = SUCCESS, retry_after: Optional[int] = None
    ) -> None:
        """
        L{DONE}, answering with the error page of C{code}: the backend
        request failed before any response reached the client (a
        L{CachingExchange} may answer from its store instead).

        @param outcome: what the lease reports, if one is still held (a
            response timeout); a failed attempt released its lease already.
        @param retry_after: the C{Retry-After} of a 503.
        """
        self._end(abort_upstream=True, outcome=outcome)
        respond_with_error(
            self.request, code, retry_after=retry_after, cause=self._cause
        )

    def _abortClient(self, outcome: str) -> None:
        """
        L{DONE}, cutting the client's response short: part of it was sent.
        """
        self._end(abort_upstream=True, outcome=outcome)
        abort_response(self.request)

    def _end(self, abort_upstream: bool = False, outcome: str = SUCCESS) -> None:
        """
        To L{DONE} (once: later calls do nothing): give the backend lease
        back, or leave the balancer's queue.

        @param abort_upstream: drop the backend connection too, because it
            is in the middle of an exchange that will not complete.
        @param outcome: what the lease reports to the balancer.
        """
        state = self._state
        if state is DONE:
            return
        self._state = DONE
        # The request and this exchange point at each other; breaking the
        # cycle lets reference counting free both at once instead of
        # leaving them to the cyclic garbage collector, whose full passes
        # show up as latency spikes.  The request falls back to its class
        # default handler, which drops whatever still arrives.
        self.request.releaseHandler()
        upstream = self._upstream
        if upstream is not None:
            # A connection that stays was answered, so its response timer
            # is stopped; one that is aborted leaves its exchange.
            self._upstream = None
            if abort_upstream:
                upstream.abort()
        if state is WAITING:
            waiting = self._waiting
            if waiting is not None:
                # Leave the balancer's queue.
                self._waiting = None
                waiting.cancel()
        else:
            self._lease.release(outcome, self._status)
