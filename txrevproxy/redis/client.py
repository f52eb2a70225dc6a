"""
A client of one C{[redis.NAME]} table: a few pipelined connections, a
timeout on every call, and a circuit breaker, so that a proxy whose Redis
is slow or down pays at most one C{timeout}, then goes straight to its
fallback until a connection made in the background works again.

Why our own client rather than txredisapi (1.6.0): txredisapi imports the
global reactor (so neither its timeouts nor its reconnects can run on an
injected clock), takes TLS as an old-style context factory whose default
does not verify the server, and reconnects on its own schedule, under
which a circuit breaker would have to be layered; what the proxy needs
of Redis is a handful of commands, which RESP2 makes short to write.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import attr
from twisted.internet.defer import Deferred, DeferredList, TimeoutError, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config.model import RedisSettings
from ..tls.client import client_tls
from .handshake import connect, failure_description
from .protocol import Argument, RedisError, RedisProtocol
from .subscriber import RedisSubscriber


class StoreUnavailable(Exception):
    """
    Redis did not answer: it is down (the circuit is open), the connection
    failed, or the call took longer than the table's C{timeout}.
    """


@attr.s(frozen=True)
class Script:
    """
    A Lua script, run with C{EVALSHA} (one round trip) and loaded with
    C{EVAL} the first time a server does not know it.
    """

    source: bytes = attr.ib()
    sha: bytes = attr.ib(init=False)

    @sha.default
    def _sha(self) -> bytes:
        return hashlib.sha1(self.source).hexdigest().encode("ascii")


def redis_endpoint(reactor, settings: RedisSettings):
    """
    The client endpoint of a Redis table's URL: a unix socket, TCP, or TLS
    over TCP with the server's certificate checked against its host name.
    """
    address = settings.url
    if address.path is not None:
        return UNIXClientEndpoint(reactor, address.path, timeout=settings.connect_timeout)
    endpoint = HostnameEndpoint(
        reactor, address.host, address.port, timeout=settings.connect_timeout
    )
    if address.tls:
        endpoint = wrapClientTLS(client_tls(address.host, settings.ca, protocols=()), endpoint)
    return endpoint


class _Connection(RedisProtocol):
    """
    A connection of a L{RedisClient}'s pool, which tells the client when
    it is lost.

    @ivar gone: fires when the connection is lost.
    """

    def __init__(self, lost) -> None:
        super().__init__()
        self._onLost = lost
        self.gone: Deferred = Deferred()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        super().connectionLost(reason)
        self._onLost(self)
        self.gone.callback(None)


class RedisClient:
    """
    The connections to one Redis server, made on first use.

    @ivar settings: the table (L{RedisSettings}).
    @ivar up: whether calls go to Redis (the circuit is closed); L{False}
        from a failure until a connection made in the background works.
    """

    log = Logger()

    def __init__(self, settings: RedisSettings, reactor, endpoint=None) -> None:
        self.settings = settings
        self._reactor = reactor
        self._endpoint = redis_endpoint(reactor, settings) if endpoint is None else endpoint
        self._ready: List[_Connection] = []
        self._connecting: Optional[Deferred] = None
        self._waiting: List[Deferred] = []
        self._next = 0
        self._retry = None
        self._closed = False
        self._subscriber: Optional[RedisSubscriber] = None
        self.up = True

    # Calls -----------------------------------------------------------------

    def execute(self, *arguments: Argument) -> Deferred:
        """
        Run one command.

        @return: a L{Deferred} firing with its reply, or failing with
            L{RedisError} (the server refused the command) or
            L{StoreUnavailable} (no answer within C{timeout}, or Redis down).
        """
        if not self.up or self._closed:
            return fail(StoreUnavailable("redis.%s is down" % (self.settings.name,)))
        result = self._connection()
        result.addCallback(lambda connection: connection.execute(*arguments))
        result.addTimeout(self.settings.timeout, self._reactor)
        result.addErrback(self._failed)
        return result

    def evalsha(self, script: Script, keys: Sequence[Argument], arguments: Sequence[Argument]) -> Deferred:
        """
        Run a Lua script by its SHA1, sending its source only when the
        server does not have it yet (after a restart, or the first time).
        """
        tail = (len(keys),) + tuple(keys) + tuple(arguments)

        def load(reason: Failure):
            reason.trap(RedisError)
            if not str(reason.value).startswith("NOSCRIPT"):
                return reason
            return self.execute(b"EVAL", script.source, *tail)

        return self.execute(b"EVALSHA", script.sha, *tail).addErrback(load)

    def publish(self, channel: bytes, message: bytes) -> Deferred:
        """
        Publish a message on a channel, as L{execute} does a command: a
        message sent while Redis is down is lost.
        """
        return self.execute(b"PUBLISH", channel, message)

    def subscribe(self, channel: bytes, handler: Callable[[bytes], None]) -> None:
        """
        Call C{handler} with each message published on C{channel}, through
        the client's one subscriber connection (see L{RedisSubscriber});
        a later call for the same channel replaces its handler.
        """
        if self._subscriber is None:
            self._subscriber = RedisSubscriber(self.settings, self._reactor, self._endpoint)
        self._subscriber.listen(channel, handler)

    def unsubscribe(self, channel: bytes, handler: Callable[[bytes], None]) -> None:
        """
        Undo L{subscribe}, unless another handler has replaced C{handler}.
        """
        if self._subscriber is not None:
            self._subscriber.forget(channel, handler)

    def _failed(self, reason: Failure) -> Failure:
        """
        A call failed: an error reply is the caller's business; anything
        else (a timeout, a lost or refused connection) opens the circuit.
        """
        if reason.check(RedisError, StoreUnavailable):
            return reason
        if reason.check(TimeoutError):
            description = "no answer within %gs" % (self.settings.timeout,)
        else:
            description = reason.getErrorMessage()
        self._down(description)
        return Failure(StoreUnavailable(description))

    # Connections -----------------------------------------------------------

    def _connection(self) -> Deferred:
        """
        A ready connection: the next of the pool in turn, a new one made
        while the pool is not full.
        """
        ready = self._ready
        if len(ready) < self.settings.pool_size and self._connecting is None:
            self._connect()
        if ready:
            self._next = (self._next + 1) % len(ready)
            return succeed(ready[self._next])
        waiting: Deferred = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(waiting)
        return waiting

    def _connect(self) -> None:
        connecting = self._connecting = connect(
            self._endpoint, lambda: _Connection(self._lost), self.settings, self._reactor
        )
        connecting.addCallbacks(self._connected, self._connectFailed)

    def _connected(self, connection: _Connection) -> None:
        self._connecting = None
        if self._closed:
            connection.transport.loseConnection()
            return
        self._ready.append(connection)
        if not self.up:
            self.up = True
            self.log.info("redis.{name}: connected again", name=self.settings.name)
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.callback(connection)

    def _connectFailed(self, reason: Failure) -> None:
        self._connecting = None
        self._down(failure_description(reason, self.settings))

    def _lost(self, connection: _Connection) -> None:
        if connection in self._ready:
            self._ready.remove(connection)

    # The circuit -------------------------------------------------------------

    def _down(self, description: str) -> None:
        """
        Redis failed: every call falls back at once for C{retry_interval},
        then a connection is tried in the background.
        """
        if self._closed:
            return
        if self.up:
            self.up = False
            self.log.warn(
                "redis.{name}: down ({reason}); calls fall back until a "
                "connection works again, tried every {interval}s",
                name=self.settings.name,
                reason=description,
                interval=self.settings.retry_interval,
            )
        if self._retry is None or not self._retry.active():
            self._retry = self._reactor.callLater(self.settings.retry_interval, self._probe)
        # Callers run last: one may close the client.
        ready, self._ready = self._ready, []
        for connection in ready:
            connection.transport.abortConnection()
        self._failWaiting(description)

    def _failWaiting(self, description: str) -> None:
        """
        Fail the calls waiting for a connection, which none will bring.
        """
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.errback(StoreUnavailable(description))

    def _probe(self) -> None:
        if self._connecting is None and not self._closed:
            self._connect()

    def close(self) -> Deferred:
        """
        Close the connections (what is in flight fails) and stop trying.
        """
        self._closed = True
        if self._subscriber is not None:
            self._subscriber.close()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        self._failWaiting("redis.%s is closed" % (self.settings.name,))
        closing = [connection.gone for connection in self._ready]
        for connection in list(self._ready):
            connection.transport.loseConnection()
        return DeferredList(closing)


def redis_clients(
    tables: Mapping[str, RedisSettings], reactor, previous: Mapping[str, RedisClient]
) -> Dict[str, RedisClient]:
    """
    A client for each C{[redis.NAME]} table; a table a reload left as it
    was keeps its client, and so its connections.
    """
    clients = {}
    for name, settings in tables.items():
        old = previous.get(name)
        if old is None or old.settings != settings:
            old = RedisClient(settings, reactor)
        clients[name] = old
    return clients
