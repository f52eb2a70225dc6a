"""
The one subscriber connection of a C{[redis.NAME]} table's client: RESP2's
SUBSCRIBE turns a connection into one that only receives messages, so it
cannot be one of the pool's.  It reconnects on its own (with a backoff)
and subscribes again to every channel listened to, since Redis keeps no
subscription across connections; what is published meanwhile is lost.
A PING every L{HEARTBEAT} seconds keeps the connection through idle
timeouts of firewalls, and finds a dead one that no RST announced: one
that has not answered the previous PING is dropped and made again.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config.model import RedisSettings
from .handshake import connect, failure_description
from .protocol import RedisProtocol, encode_command

#: The longest wait between two attempts to reconnect, in seconds.
MAX_BACKOFF = 30.0

#: Seconds between two PINGs of a subscribed connection.
HEARTBEAT = 30.0

#: The pushes of subscriber mode that only confirm a (un)subscription.
_CONFIRMATIONS = (b"subscribe", b"unsubscribe")


class _Subscription(RedisProtocol):
    """
    A connection that, once subscribed, receives pushes: C{message}
    arrays are handed on, confirmations dropped; the replies of the
    handshake before it are answered as on any connection.  The answer to
    a heartbeat's PING is a C{pong} push while subscribed, and a plain
    C{PONG} once every channel was unsubscribed (Redis then leaves
    subscriber mode).
    """

    def __init__(self, received: Callable[[bytes, bytes], None], lost) -> None:
        super().__init__()
        self._received = received
        self._onLost = lost
        self.answered = True

    def ping(self) -> None:
        """
        Send a PING, or drop the connection if the last one is still
        unanswered.
        """
        if not self.answered:
            self.transport.abortConnection()
            return
        self.answered = False
        self.transport.write(encode_command((b"PING",)))

    def _reply(self, reply: Any) -> None:
        if reply == b"PONG" and not self.pending:
            self.answered = True
            return
        if isinstance(reply, list) and reply and not self.pending:
            if reply[0] == b"message" and len(reply) == 3:
                self._received(reply[1], reply[2])
                return
            if reply[0] == b"pong":
                self.answered = True
                return
            if reply[0] in _CONFIRMATIONS:
                return
        super()._reply(reply)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        super().connectionLost(reason)
        self._onLost(self)


class RedisSubscriber:
    """
    Messages of the channels listened to, for their handlers; connected
    on the first L{listen}.

    @ivar up: whether the connection is subscribed (L{False} from its
        loss until a new one is).
    """

    log = Logger()

    def __init__(self, settings: RedisSettings, reactor, endpoint) -> None:
        self.settings = settings
        self._reactor = reactor
        self._endpoint = endpoint
        self.handlers: Dict[bytes, Callable[[bytes], None]] = {}
        self._connection: Optional[_Subscription] = None
        self._connecting = None
        self._retry = None
        self._heartbeat = None
        self._backoff = settings.retry_interval
        self._closed = False
        self.up = True

    def listen(self, channel: bytes, handler: Callable[[bytes], None]) -> None:
        """
        Call C{handler} with each message of C{channel} from now on (a
        handler already there is replaced).
        """
        new = channel not in self.handlers
        self.handlers[channel] = handler
        if self._connection is not None:
            if new:
                self._connection.transport.write(encode_command((b"SUBSCRIBE", channel)))
        elif self._connecting is None and self._retry is None and not self._closed:
            self._connect()

    def forget(self, channel: bytes, handler: Callable[[bytes], None]) -> None:
        """
        Stop calling C{handler} for C{channel}, unless another handler has
        replaced it since.
        """
        if self.handlers.get(channel) is not handler:
            return
        del self.handlers[channel]
        if self._connection is not None:
            self._connection.transport.write(encode_command((b"UNSUBSCRIBE", channel)))

    def _received(self, channel: bytes, message: bytes) -> None:
        handler = self.handlers.get(channel)
        if handler is not None:
            handler(message)

    def _connect(self) -> None:
        self._retry = None
        connecting = self._connecting = connect(
            self._endpoint,
            lambda: _Subscription(self._received, self._lost),
            self.settings,
            self._reactor,
        )
        connecting.addCallbacks(self._connected, self._failed)

    def _connected(self, connection: _Subscription) -> None:
        self._connecting = None
        if self._closed:
            connection.transport.loseConnection()
            return
        self._connection = connection
        self._backoff = self.settings.retry_interval
        self._heartbeat = self._reactor.callLater(HEARTBEAT, self._beat, connection)
        if self.handlers:
            connection.transport.write(encode_command([b"SUBSCRIBE"] + list(self.handlers)))
        if not self.up:
            self.up = True
            self.log.info("redis.{name}: subscribed again", name=self.settings.name)

    def _beat(self, connection: _Subscription) -> None:
        if connection is self._connection:
            connection.ping()
            self._heartbeat = self._reactor.callLater(HEARTBEAT, self._beat, connection)

    def _failed(self, reason: Failure) -> None:
        self._connecting = None
        self._down(failure_description(reason, self.settings))

    def _lost(self, connection: _Subscription) -> None:
        if connection is self._connection:
            self._connection = None
            if self._heartbeat is not None and self._heartbeat.active():
                self._heartbeat.cancel()
            self._down("subscriber connection lost")

    def _down(self, description: str) -> None:
        """
        Try again after the backoff, which doubles on each failure up to
        L{MAX_BACKOFF}; say so once, not on each attempt.
        """
        if self._closed:
            return
        if self.up:
            self.up = False
            self.log.warn(
                "redis.{name}: subscriber down ({reason}); messages published "
                "meanwhile are lost, reconnecting",
                name=self.settings.name,
                reason=description,
            )
        self._retry = self._reactor.callLater(self._backoff, self._connect)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def close(self) -> None:
        """
        Disconnect and stop reconnecting.
        """
        self._closed = True
        for call in (self._retry, self._heartbeat):
            if call is not None and call.active():
                call.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self._connection.transport.loseConnection()
