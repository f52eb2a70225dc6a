"""
Twisted's HTTP/2 server connection (C{twisted.web._http2}, a private
module), fitted to a proxy that may answer a stream before its request
body is in.

Twisted forgets a stream once its response is sent, and then fails on the
client's later frames for it.  L{EarlyAnswerH2Connection} drops such
frames, and tells the client to stop sending (RFC 9113 section 8.1:
RST_STREAM with NO_ERROR after a complete response).

Twisted cannot send trailer fields: its sending loop ends a stream with
an empty DATA frame.  L{EarlyAnswerH2Connection.sendTrailers} keeps a
stream's trailers on the C{h2} connection (L{TrailingConnection}), which
sends them as the frame that ends the stream when that loop ends it, after
the body the loop still holds.

The header blocks a client sends are checked by the function the
connection is given (L{EarlyAnswerH2Connection.checkFields}), rather
than by C{h2}'s own validation when it has one: what RFC 9113 sections
8.2 and 8.3 forbid (upper-case names, connection-specific fields, C{TE}
other than C{trailers}, whitespace around a value, NUL, CR and LF,
pseudo-header fields missing, repeated, unknown or out of place) is a
C{ProtocolError} either way, which Twisted answers with
GOAWAY(PROTOCOL_ERROR) before any stream is made.  The rules an HTTP/1.1
head shares are checked per stream by L{txrevproxy.server.http2}.

C{h2} builds the C{repr} of every frame it receives for a trace log that
Twisted's configuration never writes; L{TrailingConnection} handles its
frames as C{h2} does, without that log.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Type

import h2.connection
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.events import RequestReceived, TrailersReceived
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from hpack import Encoder
from hyperframe.frame import RstStreamFrame
from twisted.internet.defer import Deferred

from .h2_send import BatchingH2Connection
from .h2_stream import FieldsStream

#: Why a header block a client sent is malformed, or L{None}: given the
#: fields and whether they are trailers.
FieldsCheck = Callable[[Iterable[Tuple[bytes, bytes]], bool], Optional[str]]

TWISTED_PRIVATE = (
    "twisted.web._http2.H2Connection",
    "twisted.web._http2.H2Connection._requestReceived",
    "twisted.web._http2.H2Connection._streamCleanupCallbacks",
    "twisted.web._http2.H2Connection._outboundStreamQueues",
    "twisted.web._http2.H2Connection._requestDataReceived",
    "twisted.web._http2.H2Connection._requestEnded",
    "twisted.web._http2.H2Connection._requestAborted",
    "twisted.web._http2.H2Connection._requestDone",
    "twisted.web._http2.H2Connection._tryToWriteControlData",
)


class TrailingConnection(h2.connection.H2Connection):
    """
    An C{h2} connection that ends a stream with its trailer fields, when
    it has some, instead of an empty DATA frame or the END_STREAM flag of
    its last one.

    What it sends is not validated again (C{validate_outbound_headers}):
    a response head is the proxy's, checked as it was read from the
    backend or made, its connection-specific fields already dropped.  What
    it receives is checked by its C{check_fields}, when it has one,
    instead of C{h2}'s C{validate_inbound_headers}.

    @ivar trailers: the trailer fields of the streams that have some.
    """

    def __init__(
        self,
        config,
        encoder: Optional[Encoder] = None,
        check_fields: Optional[FieldsCheck] = None,
    ) -> None:
        """
        @param encoder: the HPACK encoder of what it sends, one that
            normalises the fields itself as C{h2} would (lower-case names,
            no connection-specific fields); L{None}: C{h2}'s own.
        @param check_fields: what checks the header blocks it receives
            (every rule of C{h2}'s C{validate_inbound_headers}); L{None}:
            C{h2}'s own validation.
        """
        config = copy.copy(config)
        config.validate_outbound_headers = False
        if encoder is not None:
            config.normalize_outbound_headers = False
        if check_fields is not None:
            config.validate_inbound_headers = False
        super().__init__(config=config)
        if encoder is not None:
            self.encoder = encoder
        self.check_fields = check_fields
        self.trailers: Dict[int, List[Tuple[bytes, bytes]]] = {}

    def receive_data(self, data: bytes):
        """
        C{h2}'s, with the header blocks of the events checked by
        C{check_fields}: a malformed one ends the connection with
        PROTOCOL_ERROR, as C{h2}'s own validation does.
        """
        events = super().receive_data(data)
        check = self.check_fields
        if check is None:
            return events
        for event in events:
            kind = type(event)
            if kind is RequestReceived or kind is TrailersReceived:
                problem = check(event.headers, kind is TrailersReceived)
                if problem is not None:
                    self.close_connection(ErrorCodes.PROTOCOL_ERROR)
                    raise ProtocolError("malformed header block: " + problem)
        return events

    def _receive_frame(self, frame):
        """
        C{h2}'s handling of a received frame, without its trace log: C{h2}
        builds C{repr(frame)} for that log before its logger is asked,
        on every frame, though Twisted's configuration logs nothing (on
        PyPy, a few percent of an HTTP/2 request's CPU at one stream per
        connection).  The frame's checks, events and flow control are
        C{h2}'s dispatch, as in C{h2}; a frame of a stream already closed
        is answered as C{h2} answers it.
        """
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            # Closed by RST_STREAM: a stream error, answered with RST_STREAM.
            if not self._stream_is_closed_by_reset(e.stream_id):
                raise
            self._send_rst_stream(e.stream_id, e.error_code)
            return e._events
        except StreamIDTooLowError as e:
            # The stream was closed (and forgotten) or implicitly closed by
            # a higher one: a stream error after RST_STREAM, a connection
            # error after END_STREAM or when closed implicitly.
            if self._stream_is_closed_by_reset(e.stream_id):
                self._send_rst_stream(e.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(e.stream_id):
                raise StreamClosedError(e.stream_id) from e
            raise
        self._prepare_for_sending(frames)
        return events

    def _send_rst_stream(self, stream_id: int, error_code: ErrorCodes) -> None:
        frame = RstStreamFrame(stream_id)
        frame.error_code = error_code
        self._prepare_for_sending([frame])

    def send_data(self, stream_id: int, data, end_stream: bool = False, **kwargs) -> None:
        if end_stream and stream_id in self.trailers:
            super().send_data(stream_id, data, **kwargs)
            self.end_stream(stream_id)
        else:
            super().send_data(stream_id, data, end_stream, **kwargs)

    def end_stream(self, stream_id: int) -> None:
        trailers = self.trailers.pop(stream_id, None)
        if trailers is None:
            super().end_stream(stream_id)
        else:
            self.send_headers(stream_id, trailers, end_stream=True)


class EarlyAnswerH2Connection(BatchingH2Connection):
    """
    An L{H2Connection} (one that sends in batches) that tolerates frames
    of streams it already answered, sends trailer fields
    (L{sendTrailers}), and calls L{connectionEnding} before it tears its
    streams down (Twisted's C{connectionLost} has a private parameter a
    subclass would otherwise have to repeat).
    """

    _goneAway = False
    _lost = False

    #: Makes the HPACK encoder of the C{h2} connection (see
    #: L{TrailingConnection}); L{None}: C{h2}'s own.
    makeEncoder: Optional[Callable[[], Encoder]] = None

    #: Checks the header blocks the client sends, in place of C{h2}'s
    #: validation (see L{TrailingConnection}); L{None}: C{h2}'s own.
    checkFields: Optional[FieldsCheck] = None

    #: The class of the C{h2} connection, built once in place of
    #: Twisted's, with Twisted's configuration.
    h2Class: Type[TrailingConnection] = TrailingConnection

    def __init__(self, reactor=None) -> None:
        super().__init__(reactor)
        make = self.makeEncoder
        self.conn = self.h2Class(
            self.conn.config, None if make is None else make(), self.checkFields
        )

    def sendTrailers(self, streamID: int, trailers: List[Tuple[bytes, bytes]]) -> None:
        """
        End the stream with C{trailers} rather than an empty DATA frame
        when its response is finished.
        """
        if streamID in self.streams:
            self.conn.trailers[streamID] = trailers

    def connectionEnding(self) -> None:
        """
        The connection is lost (or given up on); its streams are told next.
        """

    def streamDone(self) -> None:
        """
        A stream's response was sent whole, or the stream was reset.
        """

    def goAway(self) -> None:
        """
        Tell the client the connection takes no more streams (GOAWAY with
        NO_ERROR), and close it once what is queued is sent.  What the
        client sends after is dropped: C{h2} would take any frame that
        follows its GOAWAY (a SETTINGS acknowledgement) for a protocol
        error, and answer with a second GOAWAY that says so.
        """
        self._goneAway = True
        self.conn.close_connection()
        self._tryToWriteControlData()
        self._close()

    def _close(self) -> None:
        """
        Close the connection once what is written is sent.  The
        connection is its transport's producer: TLS would wait for it to
        go before it closes.  Nothing to do once the connection is lost
        (its streams end then, which may ask for it).
        """
        if self._lost:
            return
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if not self._goneAway:
            super().dataReceived(data)

    def connectionLost(self, reason, _cancelTimeouts=True) -> None:
        self._lost = True
        self.connectionEnding()
        super().connectionLost(reason, _cancelTimeouts)

    def _requestReceived(self, event) -> None:
        """
        Make the stream of a client's new request, as Twisted does, but a
        L{FieldsStream}, whose request takes the fields at once.  The
        stream is blocked until its response has something to send (a
        L{txrevproxy.net.h2_send.RoundRobin} knows no stream before its
        request: priority signals are ignored).
        """
        streamID = event.stream_id
        self.streams[streamID] = FieldsStream(
            streamID, self, event.headers, self.requestFactory, self.site, self.factory
        )
        self._streamCleanupCallbacks[streamID] = Deferred()
        self._outboundStreamQueues[streamID] = deque()
        self.priority.insert_stream(streamID)

    def _requestDataReceived(self, event) -> None:
        if event.stream_id in self.streams:
            super()._requestDataReceived(event)
        else:
            # Still counted against the connection's window: give it back.
            self.conn.acknowledge_received_data(
                event.flow_controlled_length, event.stream_id
            )

    def _requestEnded(self, event) -> None:
        if event.stream_id in self.streams:
            super()._requestEnded(event)

    def _requestAborted(self, event) -> None:
        if event.stream_id in self.streams:
            super()._requestAborted(event)

    def _requestDone(self, streamID: int) -> None:
        self.conn.trailers.pop(streamID, None)
        super()._requestDone(streamID)
        state = self.conn.streams.get(streamID)
        if (
            state is not None
            and not state.closed
            # After the client's GOAWAY (h2 then sends nothing more), the
            # streams are let go of with the connection.
            and self.conn.state_machine.state is not ConnectionState.CLOSED
        ):
            self.conn.reset_stream(streamID, ErrorCodes.NO_ERROR)
            self._tryToWriteControlData()
        self.streamDone()
