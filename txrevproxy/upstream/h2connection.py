"""
The client side of an HTTP/2 backend connection (C{protocol = "h2"} or
C{"h2c"}): one connection carries many exchanges at once, one stream
each.

An exchange sees its stream (L{H2UpstreamStream}) as it sees an HTTP/1.1
L{txrevproxy.upstream.connection.UpstreamProtocol}: it writes the request
through C{sendHead}, C{sendBody} and C{finishBody}, hears of the response
through L{txrevproxy.interfaces.IUpstreamExchange}, and pauses the
response through the stream's C{transport}, which is the stream itself.

Flow control is per stream both ways, so that one slow party stalls its
own stream and never the connection:

  - the response: the stream's receive window is opened again only for
    what the exchange took while not paused; a paused stream keeps the
    bytes it was sent unacknowledged until it is resumed.  The connection's
    window is as large as all its streams' windows together, so the
    streams that do not read cannot close it on the others;
  - the request body: sent as the backend's windows allow, the rest held
    on the stream; beyond L{UPLOAD_BUFFER} held, the exchange's upload
    producer (the client read) is paused.

A stream's life (L{H2UpstreamStream.state})::

    RESERVED   sendHead                      -> OPEN
    RESERVED   abort (the exchange ended)    -> CLOSED
    OPEN       response end, reset, abort    -> CLOSED
    any        connection lost               -> CLOSED

A connection takes new streams up to the upstream's C{max_streams} and the
backend's own SETTINGS_MAX_CONCURRENT_STREAMS, and none after a GOAWAY (or
when its pool closes): it closes once its last stream ended.  Streams the
GOAWAY says were not processed (above its last stream ID), and streams the
backend refused (REFUSED_STREAM), fail as a stale keep-alive connection
does, which the exchange may retry.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, Optional

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, ISSLTransport, ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..http.h2_fields import h2_response_head

#: Each stream's receive window: what a backend may send ahead of a
#: client that does not read (RFC 9113 section 5.2).
STREAM_WINDOW = 256 * 1024
#: Request body bytes a stream holds when the backend's windows are
#: closed, beyond which the client's upload is paused.
UPLOAD_BUFFER = 64 * 1024
#: The largest window HTTP/2 allows (RFC 9113 section 6.9.1).
_MAX_WINDOW = 2**31 - 1

# The states of an H2UpstreamStream, compared by identity.
#: Taken from its connection for an exchange; nothing sent yet.
RESERVED = "RESERVED"
#: The request head is sent: the stream is open on the connection.
OPEN = "OPEN"
#: Over: ended, reset, aborted, or its connection is gone.
CLOSED = "CLOSED"


class StreamReset(Exception):
    """
    The backend reset a stream (RST_STREAM) before its response ended.
    """

    def __init__(self, code: int) -> None:
        super().__init__("backend reset the HTTP/2 stream (%s)" % (_code_name(code),))
        self.code = code


class NotProcessed(Exception):
    """
    The backend said it did not process the stream: it refused it, or
    sent GOAWAY with a last stream ID below it.  The request may be sent
    again.
    """


class NoHTTP2(Exception):
    """
    The TLS handshake with a backend did not settle on C{h2}.
    """


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return "error code %d" % (code,)


@implementer(IPushProducer)
class H2UpstreamStream:
    """
    One exchange's stream on an L{H2UpstreamConnection}; see the module
    docstring.  It is also its own C{transport}, through which the
    exchange pauses the response (L{pauseProducing}) and registers its
    upload producer (L{registerProducer}).

    @ivar state: L{RESERVED}, L{OPEN} or L{CLOSED}.
    @ivar exchange: the exchange carried, from L{sendHead} until the stream
        is closed.
    @ivar reused: whether the exchange may be retried on another
        connection without being sent twice: its connection carried
        streams before (and may have been closing), or the backend said
        it did not process this one.
    @ivar read_seen: whether the backend sent bytes on this stream since
        the pool's deadline sweep last looked (see
        L{txrevproxy.upstream.deadlines}).
    @ivar read_at: when the deadline sweep last saw L{read_seen} set.
    """

    state = RESERVED
    exchange = None
    stream_id = 0
    read_seen = False
    read_at = 0.0
    #: Whether the exchange paused the response.
    _paused = False
    #: Response bytes taken while paused, whose window is still closed.
    _unacked = 0
    #: The exchange's upload producer, and whether it is paused.
    _producer = None
    _producer_paused = False
    #: Whether the request body is complete, and whether END_STREAM is sent.
    _body_done = False
    _end_sent = False
    _timer = None

    def __init__(self, connection: "H2UpstreamConnection", reused: bool) -> None:
        self.connection = connection
        self.pool = connection.pool
        self.reused = reused
        self._unsent: Deque[bytes] = deque()
        self._unsent_size = 0

    @property
    def transport(self) -> "H2UpstreamStream":
        """
        The stream itself, where the exchange finds a connection's
        transport (a property rather than an attribute, which would make
        each stream a reference cycle for the garbage collector).
        """
        return self

    # The request ---------------------------------------------------------

    def sendHead(
        self,
        exchange,
        head,
        head_request: bool,
        body: Optional[bytes],
        upgrade: bool = False,
        last: bool = False,
    ) -> None:
        """
        Open the stream with the request head (HTTP/2 fields, from the
        pool's C{serialize_head}).  C{upgrade} and C{last} mean nothing on
        HTTP/2: no stream switches protocols, and a body without semantics
        cannot be read as another request.
        """
        self.exchange = exchange
        self.state = OPEN
        self._body_done = body is None
        self._end_sent = body is None
        self.stream_id = self.connection.openStream(self, head, body is None)

    def sendBody(self, data: bytes) -> None:
        if self.state is OPEN and data:
            self._unsent.append(data)
            self._unsent_size += len(data)
            self.connection.sendBody(self)

    def finishBody(self) -> None:
        self._body_done = True
        if self.state is OPEN:
            self.connection.sendBody(self)

    def registerProducer(self, producer, streaming: bool) -> None:
        self._producer = producer
        self._producer_paused = False
        self.throttleUpload()

    def unregisterProducer(self) -> None:
        self._producer = None

    def throttleUpload(self) -> None:
        """
        Pause the upload producer while more than L{UPLOAD_BUFFER} bytes
        wait for the backend's window, and resume it once they are sent.
        """
        producer = self._producer
        if producer is None:
            return
        if self._unsent_size > UPLOAD_BUFFER:
            if not self._producer_paused:
                self._producer_paused = True
                producer.pauseProducing()
        elif self._producer_paused:
            self._producer_paused = False
            producer.resumeProducing()

    # The response timer --------------------------------------------------

    def awaitResponse(self, clock, timeout: float) -> None:
        """
        The request is sent: the exchange hears C{responseTimedOut} if no
        response head arrives within C{timeout} seconds.
        """
        self._timer = clock.callLater(timeout, self._responseTimedOut)

    def stopAwaiting(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _responseTimedOut(self) -> None:
        self._timer = None
        if self.exchange is not None:
            self.exchange.responseTimedOut()

    # Flow control of the response (the exchange's transport) -------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        unacked = self._unacked
        if unacked and self.state is OPEN:
            self._unacked = 0
            self.connection.acknowledge(self.stream_id, unacked)

    def stopProducing(self) -> None:
        self.abort()

    # What the connection tells -------------------------------------------

    def responseReceived(self, fields) -> None:
        self.read_seen = True
        exchange = self.exchange
        if exchange is None:
            return
        status, headers, length = h2_response_head(fields)
        exchange.responseStarted()
        exchange.responseHead(status, b"", headers, length)

    def dataReceived(self, data: bytes, flow_controlled: int) -> None:
        """
        Response body bytes: passed on, and their window opened again
        unless the exchange is paused (also by this very write).
        """
        self.read_seen = True
        exchange = self.exchange
        if exchange is not None and data:
            exchange.responseBody(data)
        if self._paused:
            self._unacked += flow_controlled
        else:
            self.connection.acknowledge(self.stream_id, flow_controlled)

    def trailersReceived(self, fields) -> None:
        self.read_seen = True
        exchange = self.exchange
        if exchange is not None:
            exchange.responseTrailers(fields)

    def ended(self) -> None:
        """
        The response is complete.  A request body still on its way is
        not wanted any more: the stream is reset (CANCEL).  The stream
        leaves its connection before the exchange hears of the end, so
        that a request the end dispatches can have its place.
        """
        exchange = self.exchange
        if not self._end_sent:
            self.connection.reset(self.stream_id, ErrorCodes.CANCEL)
        self._close()
        if exchange is not None:
            exchange.responseEnd()

    def failed(self, reason: Failure) -> None:
        """
        The stream was reset, or its connection failed or went away.
        """
        exchange = self.exchange
        self._close()
        if exchange is not None:
            exchange.upstreamFailed(reason)

    def abort(self) -> None:
        """
        The exchange gives the stream up (the client went, a timeout): reset
        it (and give back the window of what it left unread, see
        L{_close}).
        """
        state = self.state
        if state is CLOSED:
            return
        if state is OPEN:
            self.connection.reset(self.stream_id, ErrorCodes.CANCEL)
        self._close()

    def _close(self) -> None:
        if self.state is CLOSED:
            return
        self.stopAwaiting()
        unacked = self._unacked
        if unacked:
            # What it was sent while paused still counts against the
            # connection's window, whichever way the stream ended.
            self._unacked = 0
            self.connection.acknowledge(self.stream_id, unacked)
        self.exchange = None
        self._producer = None
        self._unsent.clear()
        self.connection.streamClosed(self, self.state)
        self.state = CLOSED


class H2UpstreamConnection(Protocol):
    """
    One HTTP/2 connection to a backend, in client mode, on the C{h2}
    package; see the module docstring.

    @ivar pool: the L{txrevproxy.upstream.h2pool.H2ConnectionPool} it
        belongs to.
    @ivar streams: the open streams, by stream ID.
    @ivar accepting: whether it takes new streams: not after a GOAWAY,
        nor once its pool closed it.
    @ivar idle_since: when its last stream ended.
    """

    log = Logger()

    accepting = True
    idle_since = 0.0
    #: Streams handed out and not yet opened.
    _reserved = 0
    #: Whether any stream was opened on this connection.
    _used = False
    #: Whether the TLS handshake's protocol is still to be checked.
    _check_alpn = False
    #: Why this side closed or dropped the connection, once it did.
    _failure: Optional[Failure] = None

    def __init__(self, pool, max_streams: int) -> None:
        self.pool = pool
        self._max_streams = max_streams
        self.streams: Dict[int, H2UpstreamStream] = {}
        # What this side sends was checked already: the request head was
        # read strictly, its fields are HTTP/1.1's rules (token names, no
        # CR, LF or NUL) fitted to HTTP/2 (h2_request_fields), so C{h2}'s
        # own outbound checks, a fifth of the proxy's time per request,
        # are skipped.  What the backend sends is checked.
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )

    def connectionMade(self) -> None:
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)
        self._check_alpn = ISSLTransport.providedBy(transport)
        conn = self.conn
        conn.initiate_connection()
        # The connection's window holds every stream's, so that streams
        # whose clients do not read never close it on the others.
        window = min(_MAX_WINDOW, (self._max_streams + 1) * STREAM_WINDOW)
        conn.increment_flow_control_window(window - conn.inbound_flow_control_window)
        self._flush()

    # Streams ---------------------------------------------------------------

    def available(self) -> int:
        """
        How many more streams this connection takes now.
        """
        if not self.accepting:
            return 0
        limit = min(
            self._max_streams, self.conn.remote_settings.max_concurrent_streams
        )
        return limit - len(self.streams) - self._reserved

    def reserve(self) -> H2UpstreamStream:
        """
        Hand out a stream for an exchange (see L{available}).
        """
        self._reserved += 1
        return H2UpstreamStream(self, self._used)

    def openStream(self, stream: H2UpstreamStream, fields, end_stream: bool) -> int:
        self._reserved -= 1
        self._used = True
        conn = self.conn
        stream_id = conn.get_next_available_stream_id()
        self.streams[stream_id] = stream
        conn.send_headers(stream_id, fields, end_stream=end_stream)
        self._flush()
        return stream_id

    def sendBody(self, stream: H2UpstreamStream) -> None:
        """
        Send what the stream holds of its request body as far as the
        windows allow, and END_STREAM once it is all sent.
        """
        self._sendHeld(stream)
        self._flush()

    def _sendHeld(self, stream: H2UpstreamStream) -> None:
        conn = self.conn
        stream_id = stream.stream_id
        unsent = stream._unsent
        try:
            while unsent:
                size = min(
                    conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size,
                )
                if size <= 0:
                    break
                data = unsent[0]
                if len(data) <= size:
                    unsent.popleft()
                else:
                    unsent[0] = data[size:]
                    data = data[:size]
                conn.send_data(stream_id, data)
                stream._unsent_size -= len(data)
            if not unsent and stream._body_done and not stream._end_sent:
                stream._end_sent = True
                conn.end_stream(stream_id)
        except h2.exceptions.StreamClosedError:
            # The backend reset the stream in the read being handled, whose
            # StreamReset event, still to come, fails it.
            return
        stream.throttleUpload()

    def acknowledge(self, stream_id: int, size: int) -> None:
        """
        Open the windows again for C{size} bytes the stream's exchange took
        (the connection's only, once the stream is closed); nothing once
        the connection is failed or closed.
        """
        if self._failure is not None:
            return
        self.conn.acknowledge_received_data(size, stream_id)
        self._flush()

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, code)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()

    def streamClosed(self, stream: H2UpstreamStream, state: str) -> None:
        """
        A stream left: its place is free, and a connection left with none
        is idle, or closed when it takes no new ones.
        """
        if state is RESERVED:
            self._reserved -= 1
        else:
            self.streams.pop(stream.stream_id, None)
        self.pool.streamClosed(stream)
        if not self.streams and not self._reserved:
            if self.accepting:
                self.pool.connectionIdle(self)
            else:
                self.close()

    def close(self) -> None:
        """
        Take no new streams, and close once the open ones ended (at once
        when there are none), saying so with GOAWAY.
        """
        self.accepting = False
        if not self.streams and not self._reserved and self._failure is None:
            self._failure = Failure(ConnectionDone("closed by the proxy"))
            self.conn.close_connection()
            self._flush()
            self.transport.loseConnection()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    # What the backend sends ------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._check_alpn:
            self._check_alpn = False
            if self.transport.negotiatedProtocol != b"h2":
                self._fail(NoHTTP2("the backend's TLS handshake did not choose h2"))
                return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self._fail(e)
            return
        streams = self.streams
        # What the clients are sent of this read leaves in one write each.
        held: Dict[int, object] = {}
        try:
            for event in events:
                kind = type(event)
                if kind is h2.events.DataReceived:
                    stream = streams.get(event.stream_id)
                    if stream is None:
                        # A stream this side reset: give its window back.
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                        continue
                    self._hold(held, stream)
                    stream.dataReceived(event.data, event.flow_controlled_length)
                elif kind is h2.events.ResponseReceived:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        self._hold(held, stream)
                        stream.responseReceived(event.headers)
                elif kind is h2.events.StreamEnded:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        stream.ended()
                elif kind is h2.events.WindowUpdated:
                    self._windowOpened(event.stream_id)
                elif kind is h2.events.TrailersReceived:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        stream.trailersReceived(event.headers)
                elif kind is h2.events.StreamReset:
                    self._streamReset(event)
                elif kind is h2.events.RemoteSettingsChanged:
                    self._windowOpened(0)
                elif kind is h2.events.ConnectionTerminated:
                    self._goingAway(event)
            self._flush()
        finally:
            for release in held.values():
                if release is not None:
                    release()

    @staticmethod
    def _hold(held: Dict[int, object], stream: H2UpstreamStream) -> None:
        exchange = stream.exchange
        if exchange is not None and stream.stream_id not in held:
            held[stream.stream_id] = exchange.holdWrites()

    def _windowOpened(self, stream_id: int) -> None:
        """
        The backend opened a window (or changed the initial one): send
        what the streams concerned hold.
        """
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                self._sendHeld(stream)
            return
        for stream in list(self.streams.values()):
            if stream._unsent:
                self._sendHeld(stream)

    def _streamReset(self, event) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            stream.reused = True
            stream.failed(Failure(NotProcessed("the backend refused the stream")))
        else:
            stream.failed(Failure(StreamReset(event.error_code)))

    def _goingAway(self, event) -> None:
        """
        GOAWAY: no new streams; those above its last stream ID were not
        processed.  The connection closes once the others end.

        C{h2} closes its connection state on any GOAWAY received, after
        which it refuses every frame; but RFC 9113 section 6.8 lets the
        streams up to the last stream ID finish, so its state is opened
        again for them (this side opens no new stream on it).
        """
        self.accepting = False
        self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        last = event.last_stream_id
        if last is None:
            last = 0
        for stream_id, stream in sorted(self.streams.items()):
            if stream_id > last:
                stream.reused = True
                stream.failed(
                    Failure(
                        NotProcessed(
                            "the backend went away (%s) before the stream"
                            % (_code_name(event.error_code),)
                        )
                    )
                )
        self.close()

    def _fail(self, error: Exception) -> None:
        """
        The backend broke the protocol: drop the connection, and fail its
        streams with why.
        """
        self.log.warn(
            "HTTP/2 backend {backend} failed: {error}",
            backend=self.pool.name,
            error=str(error),
        )
        self.accepting = False
        if self._failure is None:
            self._failure = Failure(error)
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:
        self.accepting = False
        self.pool.connectionLost(self)
        failure = self._failure
        if failure is None or failure.check(ConnectionDone) is not None:
            # Nothing is sent any more, not even a GOAWAY from close().
            failure = self._failure = reason
        for stream in list(self.streams.values()):
            stream.failed(failure)
