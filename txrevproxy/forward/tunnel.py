"""
Two connections spliced into one pipe, for requests that switched protocols
(WebSocket and other Upgrade requests, RFC 9110 section 7.8).

After the backend's 101 is relayed, the proxy stops speaking HTTP on both
connections and copies bytes each way.  Each transport is registered as the
producer of the other, so a side that reads slowly pauses the other side's
reading: memory stays bounded.  When either side closes, the other is closed
after its pending bytes; a pipe idle in both directions for C{idle_timeout}
is closed too.

The request that opened the tunnel is logged and counted when the pipe
closes, as one request with status 101 whose duration is the tunnel's life:
its received bytes are those the client sent through the pipe, its sent
bytes those the backend sent.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.protocol import Protocol


class _ClientSide(Protocol):
    """
    Takes over the client connection's bytes from the HTTP channel.
    """

    def __init__(self, tunnel: "Tunnel") -> None:
        self._tunnel = tunnel

    def dataReceived(self, data: bytes) -> None:
        self._tunnel.fromClient(data)

    def connectionLost(self, reason=None) -> None:
        self._tunnel.clientClosed()


class Tunnel:
    """
    A pipe between the client channel of an upgraded request and a backend
    connection.

    @param request: the request whose 101 response was relayed.
    @param on_close: called once, when the pipe is closed.
    """

    def __init__(
        self,
        request,
        upstream,
        clock,
        idle_timeout: float,
        on_close: Callable[[], None],
    ) -> None:
        self._request = request
        channel = request.channel
        self._client = channel.transport
        self._upstream = upstream
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._on_close = on_close
        self._last_activity = clock.seconds()
        self._timer = clock.callLater(idle_timeout, self._checkIdle)
        self._closed = False

        pending = channel.switchProtocol(_ClientSide(self))
        # The HTTP channel was the client transport's producer, and may
        # have paused it while it waited for this response.
        self._client.unregisterProducer()
        self._client.registerProducer(upstream.transport, True)
        upstream.transport.registerProducer(self._client, True)
        self._client.resumeProducing()
        if pending:
            self.fromClient(pending)

    def fromClient(self, data: bytes) -> None:
        self._last_activity = self._clock.seconds()
        self._request.bodyBytes += len(data)
        self._upstream.transport.write(data)

    def fromBackend(self, data: bytes) -> None:
        self._last_activity = self._clock.seconds()
        self._request.sentLength += len(data)
        self._client.write(data)

    def clientClosed(self) -> None:
        self._close()

    def backendClosed(self) -> None:
        self._close()

    def _checkIdle(self) -> None:
        idle_until = self._last_activity + self._idle_timeout
        now = self._clock.seconds()
        if now >= idle_until:
            self._timer = None
            self._close()
        else:
            self._timer = self._clock.callLater(idle_until - now, self._checkIdle)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in (self._client, self._upstream.transport):
            transport.unregisterProducer()
            transport.loseConnection()
        self._on_close()
        request = self._request
        request.site.log(request)
