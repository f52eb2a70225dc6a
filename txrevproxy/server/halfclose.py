"""
A client that sent a FIN while its requests were being answered: it may
have half-closed and still read, or closed its socket and left.  The two
look the same until the proxy sends something (see
L{txrevproxy.net.delivery}), so the proxy watches the connection, and logs
those requests once it knows which it was.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.error import ConnectionDone
from twisted.internet.task import LoopingCall

from ..net.delivery import DELIVERED, GONE, Probe

#: Seconds between two looks at the connection.
INTERVAL = 0.05

#: The longest time between two looks while an answer is still coming:
#: the interval doubles up to it, so that a client that half-closed while
#: a slow backend answers costs one probe a second, not twenty.
MAX_INTERVAL = 1.0

#: Seconds after the last answer was written beyond which, with no reset
#: and no acknowledgement, the answers are taken as delivered.
LIMIT = 3.0


class HalfClosedClient:
    """
    Watches the client of a L{ProxyChannel} that sent a FIN while a request
    was being answered, every L{INTERVAL} seconds (while the answer is
    still coming, ever less often, down to one look every L{MAX_INTERVAL}),
    and holds the access log lines of the requests answered meanwhile
    (L{hold}):

      - a reset at any time means the client is gone: the connection is
        aborted, so that a request still being answered is logged with 499
        and its backend request given up now, not when the backend next
        sends something; the held lines say 499 too, as nginx logs a
        client that closed before its answer;
      - once the last answer is written (L{answered}), the client's
        acknowledgement of all of it means it read it: the held lines keep
        their status, and the connection is closed;
      - with neither after L{LIMIT} seconds, the answers are taken as
        delivered.

    If the connection is lost meanwhile, a clean close keeps the statuses
    and a broken one (a write failed) means 499.  Each line's duration
    ends when its answer was written, not when it was confirmed.
    """

    def __init__(self, channel, probe: Probe, clock) -> None:
        self._channel = channel
        self._probe = probe
        self._clock = clock
        self._held: List = []
        self._deadline: Optional[float] = None
        self._loop = LoopingCall(self._look)
        self._loop.clock = clock
        self._loop.start(INTERVAL, now=False)

    def hold(self, request) -> None:
        """
        Log C{request}, whose answer is written, once the client's fate is
        known.
        """
        request.ended = self._clock.seconds()
        self._held.append(request)

    def answered(self) -> None:
        """
        The last answer is written: wait for the client to take it,
        looking every L{INTERVAL} again.
        """
        self._deadline = self._clock.seconds() + LIMIT
        loop = self._loop
        if loop.running and loop.interval != INTERVAL:
            loop.stop()
            loop.start(INTERVAL, now=False)

    def lost(self, reason) -> None:
        """
        The connection was lost before a verdict (see the class docstring).
        """
        self._settle(gone=reason.check(ConnectionDone) is None)

    def _look(self) -> None:
        verdict = self._probe()
        if verdict is GONE:
            self._loop.stop()
            # lost() follows, with the statuses of a client that left.
            self._channel.transport.abortConnection()
        elif self._deadline is not None and (
            verdict is DELIVERED or self._clock.seconds() >= self._deadline
        ):
            self._settle(gone=False)
            self._channel.transport.loseConnection()
        elif self._deadline is None:
            self._loop.interval = min(self._loop.interval * 2, MAX_INTERVAL)

    def _settle(self, gone: bool) -> None:
        if self._loop.running:
            self._loop.stop()
        self._channel.watch = None
        held, self._held = self._held, []
        for request in held:
            if gone:
                request.code = 499
            request.site.log(request)
