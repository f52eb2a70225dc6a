"""
A faster sending loop for Twisted's HTTP/2 server connection
(C{twisted.web._http2}, a private module).

Twisted picks the stream of each DATA frame from a C{priority.PriorityTree}
and sends one frame per turn of the reactor.  With many streams that tree
is most of the cost of a response: taking a stream out of it rebuilds
heaps (over a millisecond per stream at a hundred streams), and every
frame waits a reactor turn, so a response that is one DATA frame and its
end waits two.  RFC 9113 (section 5.3) deprecates the priority signals
the tree follows, and clients no longer rely on them.

L{RoundRobin} takes the tree's place: the streams with something to send
take turns, in constant time.  L{BatchingH2Connection} sends, in one turn
of the reactor, frames until what it sent reaches L{TURN_BYTES} or nothing
is left, then gives the reactor back (other connections, reads) before it
goes on.  Woken by a stream that has something to send, it waits for the
end of the reactor's turn, so that the responses finished in that turn go
out in one write.  A response's last DATA frame carries END_STREAM, where
Twisted sends an empty frame after it (one frame less per response, as
nginx sends them).  Flow control is Twisted's and C{h2}'s: a stream without
window is blocked alone (until a WINDOW_UPDATE or a larger initial window
in the client's SETTINGS opens it), and the connection still waits for
its transport when that pauses it.

A connection with one stream does not wait for the end of the turn (see
L{BatchingH2Connection._sendSoon}); what it gathers instead is what one
read of the backend causes: between L{BatchingH2Connection.holdSending}
and L{BatchingH2Connection.releaseSending} the loop is not woken, so a
small response's body and its end go out in one run of the loop, in one
DATA frame that ends the stream.  The response's HEADERS frame, sent
meanwhile, waits in C{h2}'s buffer for that run too, and the run's one
write goes through TLS at once (L{txrevproxy.net.tls_send}) rather than
at the end of the reactor's turn.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Deque, Dict, Optional

import priority
from twisted.internet.defer import Deferred
from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection

from .tls_send import write_now, writes_now

TWISTED_PRIVATE = (
    "twisted.web._http2.H2Connection",
    "twisted.web._http2._END_STREAM_SENTINEL",
    "twisted.web._http2.H2Connection._sendPrioritisedData",
    "twisted.web._http2.H2Connection._outboundStreamQueues",
    "twisted.web._http2.H2Connection._consumerBlocked",
    "twisted.web._http2.H2Connection._sendingDeferred",
    "twisted.web._http2.H2Connection._stillProducing",
    "twisted.web._http2.H2Connection._requestDone",
    "twisted.web._http2.H2Connection._handleWindowUpdate",
    "twisted.web._http2.H2Connection._tryToWriteControlData",
)

#: A window update of the connection, which concerns every stream (what
#: Twisted's C{_handleWindowUpdate} reads of an C{h2} C{WindowUpdated}).
_EVERY_STREAM = SimpleNamespace(stream_id=0)

#: The bytes of DATA frames one connection sends in a turn of the reactor
#: before it lets the others have theirs.
TURN_BYTES = 256 * 1024


class RoundRobin:
    """
    The streams of a connection with something to send, in turns: what
    Twisted asks of its priority tree, without the priorities.

    A stream is known from L{insert_stream} to L{remove_stream}, blocked
    at first; L{next_stream} gives the unblocked ones in turn, and L{None}
    when there is none (not C{priority}'s C{DeadlockError}: an exception
    raised once a response, through frames that PyPy's JIT then has to
    build).
    """

    def __init__(self) -> None:
        self._blocked: Dict[int, bool] = {}
        self._ready: Deque[int] = deque()

    def insert_stream(self, stream_id: int, *args, **kwargs) -> None:
        if stream_id in self._blocked:
            raise priority.DuplicateStreamError(stream_id)
        self._blocked[stream_id] = True

    def reprioritize(self, stream_id: int, *args, **kwargs) -> None:
        """
        Priorities are ignored; a stream not known yet is left for
        L{insert_stream}.
        """

    def block(self, stream_id: int) -> None:
        if self._blocked.get(stream_id) is False:
            self._blocked[stream_id] = True
            self._ready.remove(stream_id)

    def unblock(self, stream_id: int) -> None:
        if self._blocked.get(stream_id):
            self._blocked[stream_id] = False
            self._ready.append(stream_id)

    def remove_stream(self, stream_id: int) -> None:
        self.block(stream_id)
        self._blocked.pop(stream_id, None)

    def ready(self) -> bool:
        """
        Whether a stream has something to send.
        """
        return bool(self._ready)

    def next_stream(self) -> Optional[int]:
        """
        The next stream with something to send, or L{None}.
        """
        ready = self._ready
        if not ready:
            return None
        stream_id = ready.popleft()
        ready.append(stream_id)
        return stream_id


class BatchingH2Connection(H2Connection):
    """
    An L{H2Connection} that sends its streams' DATA frames in turns
    (L{RoundRobin}), as many in one turn of the reactor as L{TURN_BYTES}
    allows, written to its transport at once.
    """

    def __init__(self, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        super().__init__(reactor)
        self.priority = RoundRobin()
        self._sendingReactor = reactor
        self._sendCall = None
        self._holds = 0
        self._wokenWhileHeld = False
        self._holdingControl = False
        self._controlHeld = False
        self._writesNow = False
        self._remoteInitialWindow = 0

    def connectionMade(self) -> None:
        # The loop's write: through TLS at once, on a TLS connection.
        self._writesNow = writes_now(self.transport)
        # The client's SETTINGS_INITIAL_WINDOW_SIZE as last seen: one
        # lookup of h2's settings a read, not two.
        self._remoteInitialWindow = self.conn.remote_settings.initial_window_size
        super().connectionMade()

    def _sendPrioritisedData(self, *args) -> None:
        """
        Send DATA frames (and the ends of streams) until there is nothing
        to send, the transport pauses the connection, or L{TURN_BYTES} are
        sent; then wait for more data, for the transport, or for the next
        turn of the reactor.  A stream whose response is sent whole is
        let go of once its last frame is written.
        """
        if not self._stillProducing:
            return
        conn = self.conn
        queues = self._outboundStreamQueues
        scheduler = self.priority
        done = []
        budget = TURN_BYTES
        self.resetTimeout()
        while budget > 0 and self._consumerBlocked is None:
            stream = scheduler.next_stream()
            if stream is None:
                break
            queue = queues[stream]
            frameData = queue.popleft()
            if frameData is _END_STREAM_SENTINEL:
                conn.end_stream(stream)
                scheduler.block(stream)
                done.append(stream)
                continue
            # Below zero after the client made its initial window smaller
            # (RFC 9113 section 6.9.2), and still unblocked by an update
            # that left it there: nothing may be sent.
            window = conn.local_flow_control_window(stream)
            size = min(conn.max_outbound_frame_size, max(window, 0))
            if len(frameData) > size:
                queue.appendleft(frameData[size:])
                frameData = frameData[:size]
            elif frameData and queue and queue[0] is _END_STREAM_SENTINEL:
                # The response's last bytes: its DATA frame ends the stream
                # too, rather than an empty one after it.
                queue.popleft()
                conn.send_data(stream, frameData, end_stream=True)
                budget -= len(frameData)
                scheduler.block(stream)
                done.append(stream)
                continue
            if frameData:
                conn.send_data(stream, frameData)
                budget -= len(frameData)
            if not queue or window <= len(frameData):
                # Unblocked by a write, or by the WINDOW_UPDATE that gives
                # it room.
                scheduler.block(stream)
            if self.remainingOutboundWindow(stream) <= 0:
                self.streams[stream].flowControlBlocked()
        data = conn.data_to_send()
        if data:
            self._controlHeld = False
            if self._writesNow:
                write_now(self.transport, data)
            else:
                self.transport.write(data)
        for stream in done:
            if stream in self.streams:
                # (Not when an earlier one's end closed the connection.)
                self._requestDone(stream)
        if not self._stillProducing:
            return
        if self._consumerBlocked is not None:
            self._consumerBlocked.addCallback(self._sendPrioritisedData)
        elif scheduler.ready():
            # The turn's bytes are spent, or a stream let go of made
            # another one write.
            self._sendNextTurn()
        elif self._sendingDeferred is None:
            self._sendingDeferred = Deferred()
            self._sendingDeferred.addCallback(self._sendSoon)

    def _sendSoon(self, _=None) -> None:
        """
        Run the sending loop once the reactor is done with the events it
        is handling: the responses that streams finish in the meantime
        (backend responses read in the same turn) go out together, in one
        write, each ending its stream with its last DATA frame; woken at
        once, the loop would send each response, and its end, alone.

        A connection with one stream has nothing to gather: its loop runs
        at once, since waiting would also put the write after the TLS
        layer's own flush at the end of the turn, a turn later.
        """
        if self._holds:
            self._wokenWhileHeld = True
        elif len(self.streams) <= 1:
            self._sendPrioritisedData()
        else:
            self._sendNextTurn()

    def holdSending(self) -> None:
        """
        Do not wake the sending loop until L{releaseSending} is called as
        often as this: what the streams write meanwhile (a response's body
        and its end, read from the backend at once) is sent by one run of
        it.
        """
        self._holds += 1

    def releaseSending(self) -> None:
        """
        End a L{holdSending}; after the last, wake the sending loop if a
        stream asked for it meanwhile.
        """
        self._holds -= 1
        if self._holds:
            return
        if self._wokenWhileHeld:
            self._wokenWhileHeld = False
            self._sendSoon()
        if self._controlHeld:
            # No run of the loop took the held HEADERS frame (it waits for
            # the next turn, or the body has not come yet).
            self._controlHeld = False
            self._tryToWriteControlData()

    def writeHeaders(self, version, code, reason, headers, streamID) -> None:
        """
        Twisted's, but while sending is held, the HEADERS frame stays in
        C{h2}'s buffer, to go out with the body in the loop's one write
        (or at L{releaseSending}).
        """
        self._holdingControl = self._holds > 0
        try:
            super().writeHeaders(version, code, reason, headers, streamID)
        finally:
            self._holdingControl = False

    def _tryToWriteControlData(self) -> bool:
        """
        Twisted's, except for the HEADERS frame of L{writeHeaders} while
        sending is held: it is left in C{h2}'s buffer, and noted.
        """
        if self._holdingControl:
            self._controlHeld = True
            return True
        return super()._tryToWriteControlData()

    def _sendNextTurn(self) -> None:
        """
        Run the sending loop in the reactor's next turn (once, however
        often asked).
        """
        if self._sendCall is None:
            self._sendCall = self._sendingReactor.callLater(0, self._sendTurn)

    def _sendTurn(self) -> None:
        self._sendCall = None
        self._sendPrioritisedData()

    def dataReceived(self, data: bytes) -> None:
        """
        Twisted hears of the windows the client opens only through
        WINDOW_UPDATE frames; a larger SETTINGS_INITIAL_WINDOW_SIZE opens
        every stream's window as well (RFC 9113 section 6.9.2), and is
        taken here for an update of them all, or a stream stalled on its
        window would wait for a WINDOW_UPDATE that may never come.
        """
        super().dataReceived(data)
        window = self.conn.remote_settings.initial_window_size
        if window > self._remoteInitialWindow:
            self._handleWindowUpdate(_EVERY_STREAM)
        self._remoteInitialWindow = window

    def _handleWindowUpdate(self, event) -> None:
        """
        Unblock the streams the update gives window to, and wake the
        sending loop for them: it waits for data once every stream is
        blocked, those without window included.
        """
        super()._handleWindowUpdate(event)
        waiting = self._sendingDeferred
        if waiting is not None and self.priority.ready():
            self._sendingDeferred = None
            waiting.callback(None)
