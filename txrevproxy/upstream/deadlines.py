"""
The timeouts of an exchange after its response started: the read timeout
between two backend reads, the send timeout of a client that stopped
reading, and the total deadline of a request.

They are checked by one sweep a second per pool (L{DeadlineSweep}) over
its busy connections, not by a timer per read or per write: creating or
pushing back a reactor call for every read costs more than the read's own
work, where the sweep costs one pass a second.  A backend read only sets
a flag on its connection (no clock read); the sweep stamps the time when
it sees the flag.  So these timeouts fire up to two sweeps (about two
seconds) late, as the client side's C{header_timeout} and
C{min_body_rate} fire up to a second late.
"""

from __future__ import annotations

from typing import Optional

from .connection import TUNNEL

#: Seconds between two sweeps: the granularity of the timeouts here.
SWEEP_INTERVAL = 1.0

# Which timeout fired, as the access log and the metrics name it.
#: No byte came from the backend within the connect timeout.
CONNECT = "connect"
#: No response byte within the response timeout after the request was sent.
RESPONSE = "response"
#: No backend read within the read timeout, once the response started.
READ = "read"
#: The client did not take the response for longer than the send timeout.
SEND = "send"
#: The request's total deadline passed.
TOTAL = "total"

#: Every kind of timeout, for the metrics.
KINDS = (CONNECT, RESPONSE, READ, SEND, TOTAL)


def expired(
    target,
    now: float,
    deadline: float,
    paused_at: Optional[float],
    read_at: Optional[float],
) -> Optional[str]:
    """
    Which timeout of an exchange has expired at C{now}, if any.

    @param target: what carries the route's C{read_timeout} and
        C{send_timeout} (a L{txrevproxy.forward.resource.ProxyTarget}).
    @param deadline: when the total deadline passes; C{0}: none.
    @param paused_at: since when the client has paused the response, or
        L{None}.  While it is paused the backend is not read, so the read
        timeout does not count.
    @param read_at: when the backend was last read, or L{None} when the
        response has not started (the response timer's job).
    """
    if deadline and now >= deadline:
        return TOTAL
    if paused_at is not None:
        if now - paused_at >= target.send_timeout:
            return SEND
    elif read_at is not None and now - read_at >= target.read_timeout:
        return READ
    return None


class DeadlineSweep:
    """
    Once a second, has each exchange on a pool's busy connections check
    its deadlines (C{checkDeadlines}).  It runs while the pool has
    connections, so an unused pool costs no timer, and starts again when
    a new connection is made (not per request: most requests reuse one).
    """

    _call = None

    def __init__(self, clock, busy, idle) -> None:
        self._clock = clock
        self._busy = busy
        self._idle = idle

    def start(self) -> None:
        if self._call is None:
            self._call = self._clock.callLater(SWEEP_INTERVAL, self._sweep)

    def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _sweep(self) -> None:
        self._call = None
        now = self._clock.seconds()
        for connection in list(self._busy):
            exchange = connection.exchange
            if exchange is None or connection.state is TUNNEL:
                continue
            if connection.read_seen:
                connection.read_seen = False
                connection.read_at = now
            exchange.checkDeadlines(now, connection.read_at)
        if self._busy or self._idle:
            self.start()
