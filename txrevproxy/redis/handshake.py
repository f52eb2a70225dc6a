"""
What every new connection to Redis sends first, whether it joins a
client's pool or becomes a subscriber.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import Deferred, DeferredList

from ..config.model import RedisSettings
from .protocol import RedisProtocol


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
