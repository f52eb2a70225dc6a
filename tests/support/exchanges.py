"""
An exchange that records what a backend connection tells it, for the tests
of L{txrevproxy.upstream.connection} and L{txrevproxy.upstream.pool}.
"""

from __future__ import annotations


class RecordingExchange:
    """
    Records what an L{UpstreamProtocol} tells it, and the writes it holds
    per read.

    @ivar on_head: called with the status when the head arrives.
    """

    on_head = None

    def __init__(self):
        self.events = []
        self.held = 0
        self.released = 0

    def responseStarted(self):
        self.events.append("started")

    def checkDeadlines(self, now, read_at):
        pass

    def holdWrites(self):
        self.held += 1
        return self._release

    def _release(self):
        self.released += 1

    def responseHead(self, status, reason, headers, length):
        self.events.append(("head", status, length))
        if self.on_head is not None:
            self.on_head(status)

    def responseBody(self, data):
        self.events.append(("body", data))

    def responseTrailers(self, trailers):
        self.events.append(("trailers", trailers))

    def responseEnd(self):
        self.events.append("end")

    def upstreamFailed(self, reason):
        self.events.append(("failed", reason.type))

    def responseTimedOut(self):
        self.events.append("timed out")

    def responseUpgraded(self, rest):
        self.events.append(("upgraded", rest))

    def tunnelData(self, data):
        self.events.append(("tunnel", data))
