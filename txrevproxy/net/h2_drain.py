"""
A graceful end for Twisted's HTTP/2 server connection (C{twisted.web._http2},
a private module): GOAWAY, the streams in flight finish, then the
connection closes (RFC 9113 section 6.8).

Twisted has no such end (its GOAWAY comes with the close), and C{h2} takes
a GOAWAY it sends for the end of the connection: it refuses to send any
frame after it, though the streams it promised to process still have
their responses to send.  L{DrainingH2Connection} sends its GOAWAYs
through C{h2} and keeps C{h2}'s connection open for those streams.

It drains as nginx and h2o do, with two GOAWAYs: the first names the
largest stream ID (a stream the client is opening now is still
processed) and comes with a PING; when its ACK comes back, one round trip
later, every stream the client opened before it saw the first GOAWAY has
arrived, and the second GOAWAY names the last of them.  Streams above it
are refused (RST_STREAM REFUSED_STREAM: the client may retry them on a
new connection), and the connection closes once its last stream ends.
"""

from __future__ import annotations

from typing import Optional

import h2.connection
from h2.errors import ErrorCodes
from h2.events import PingAckReceived

from .h2 import EarlyAnswerH2Connection, TrailingConnection

TWISTED_PRIVATE = (
    "twisted.web._http2.H2Connection._requestReceived",
    "twisted.web._http2.H2Connection._requestDone",
    "twisted.web._http2.H2Connection._tryToWriteControlData",
)

#: The largest stream ID (RFC 9113 section 5.1.1): the first GOAWAY's.
ANY_STREAM = 2**31 - 1

#: The opaque data of the PING sent with the first GOAWAY.
DRAIN_PING = b"drain\x00\x00\x00"

#: Seconds to wait for the ACK of that PING before the second GOAWAY, for
#: a client that does not answer (h2o waits one second too).
DRAIN_GRACE = 1.0


class _GoingAwayH2(TrailingConnection):
    """
    C{h2}'s connection (one that sends trailers), able to send a GOAWAY
    and go on with the streams it spares, and to report the ACK of the
    drain's PING.

    @ivar on_drain_ack: called when the ACK of L{DRAIN_PING} arrives, or
        L{None}.
    """

    on_drain_ack = None

    def receive_data(self, data: bytes):
        events = super().receive_data(data)
        if self.on_drain_ack is not None:
            for event in events:
                if isinstance(event, PingAckReceived) and event.ping_data == DRAIN_PING:
                    acked, self.on_drain_ack = self.on_drain_ack, None
                    acked()
                    break
        return events

    def go_away(self, last_stream_id: int) -> None:
        """
        Queue a GOAWAY (NO_ERROR) naming C{last_stream_id}; the connection
        stays open for the streams up to it.
        """
        state = self.state_machine.state
        self.close_connection(ErrorCodes.NO_ERROR, last_stream_id=last_stream_id)
        # Nothing in h2 sends on after its own GOAWAY: its state machine
        # is put back where the GOAWAY found it.
        self.state_machine.state = state


class DrainingH2Connection(EarlyAnswerH2Connection):
    """
    An L{EarlyAnswerH2Connection} that can be drained (L{drain}).

    Its C{callLater} (Twisted's timeout one) times the wait for the PING's
    ACK.
    """

    #: The last stream ID of the second GOAWAY, once it is sent.
    lastStreamID: Optional[int] = None
    _draining = False
    _closing = False
    _grace = None

    # The h2 connection that can drain.
    h2Class = _GoingAwayH2

    def drain(self) -> None:
        """
        Send the first GOAWAY and its PING, then the second GOAWAY when the
        PING comes back or after L{DRAIN_GRACE} seconds; the connection
        closes once the streams up to the second are done.  Called again,
        it does nothing.
        """
        if self._draining:
            return
        self._draining = True
        conn = self.conn
        if conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
            # The connection already ended (the client's GOAWAY, an
            # error): it is being closed.
            self._close()
            return
        conn.go_away(ANY_STREAM)
        conn.ping(DRAIN_PING)
        conn.on_drain_ack = self._lastGoAway
        self._grace = self.callLater(DRAIN_GRACE, self._lastGoAway)
        self._tryToWriteControlData()

    def _lastGoAway(self) -> None:
        """
        Send the second GOAWAY, with the highest stream ID the client
        opened, and close if no stream is left.
        """
        if self.lastStreamID is not None:
            return
        self.conn.on_drain_ack = None
        self._stopGrace()
        self.lastStreamID = self.conn.highest_inbound_stream_id
        self.conn.go_away(self.lastStreamID)
        self._tryToWriteControlData()
        if not self.streams:
            self._close()

    def _stopGrace(self) -> None:
        grace, self._grace = self._grace, None
        if grace is not None and grace.active():
            grace.cancel()

    def connectionEnding(self) -> None:
        self._stopGrace()
        super().connectionEnding()

    def _requestReceived(self, event) -> None:
        last = self.lastStreamID
        if last is not None and event.stream_id > last:
            # Opened after the second GOAWAY: never processed; its frames
            # that follow are dropped (see EarlyAnswerH2Connection).
            self.conn.reset_stream(event.stream_id, ErrorCodes.REFUSED_STREAM)
            return
        super()._requestReceived(event)

    def _requestDone(self, streamID: int) -> None:
        super()._requestDone(streamID)
        if self.lastStreamID is not None and not self.streams:
            self._close()
