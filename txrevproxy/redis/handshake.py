"""
What every new connection to Redis sends first, whether it joins a
client's pool or becomes a subscriber, and the making of such a
connection within C{connect_timeout}.
"""

from __future__ import annotations

from typing import Any, Callable, List

from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.protocol import Factory

from ..config.model import RedisSettings
from .protocol import RedisError, RedisProtocol


def handshake(connection: RedisProtocol, settings: RedisSettings) -> Deferred:
    """
    Authenticate and select the database of a new connection; then it is
    ready.  Pipelined: one round trip whatever is sent.

    @return: a L{Deferred} firing with C{connection}, or failing with the
        server's refusal (the connection is then aborted).
    """
    address = settings.url
    password = settings.password or address.password
    steps = []
    if password is not None:
        credentials = (address.username, password) if address.username else (password,)
        steps.append(connection.execute(b"AUTH", *credentials))
    if address.db:
        steps.append(connection.execute(b"SELECT", address.db))
    steps.append(connection.execute(b"PING"))

    def check(results: List[Any]):
        for ok, value in results:
            if not ok:
                connection.transport.abortConnection()
                return value
        return connection

    return DeferredList(steps, consumeErrors=True).addCallback(check)


def connect(
    endpoint, protocol: Callable[[], RedisProtocol], settings: RedisSettings, clock
) -> Deferred:
    """
    A new connection through C{endpoint}, handshaken.

    The connection and its handshake are bounded together by
    C{connect_timeout}: a server that accepts the connection but does not
    answer (stopped, or behind a dead link that no RST announces) would
    otherwise hold the attempt for good, and with it every later attempt
    of the client, which makes one at a time.

    @param protocol: makes the connection's protocol.
    @return: a L{Deferred} firing with the ready connection, or failing
        as L{handshake} does or with L{twisted.internet.defer.TimeoutError}.
    """
    connecting = endpoint.connect(Factory.forProtocol(protocol))
    connecting.addCallback(handshake, settings)
    return connecting.addTimeout(settings.connect_timeout, clock)


def failure_description(reason, settings: RedisSettings) -> str:
    """
    What L{connect}'s failure C{reason} says to an operator, in a few words.
    """
    if reason.check(TimeoutError):
        return "no connection ready within %gs" % (settings.connect_timeout,)
    if reason.check(RedisError):
        return "refused the connection: %s" % (reason.getErrorMessage(),)
    return reason.getErrorMessage()
