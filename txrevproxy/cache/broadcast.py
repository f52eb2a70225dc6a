"""
Purges and invalidations told to every process and instance of a proxy
through Redis pub/sub (C{broadcast = "redis:NAME"} on a C{[caches.NAME]}
table): each is published on the cache's channel with the primary keys
it removed and where it comes from, and every other process removes the
same keys from its own store, without publishing them again.

Delivery is at most once: a message published while Redis or a
subscriber connection is down is lost, and the copies it would have
removed stay until their freshness ends (see C{docs/caching.rst}).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Callable, Optional, Sequence, Tuple

from twisted.application.service import Service

from ..observe.metrics import CacheStats

#: The kinds of removal, named as the metrics count them.
PURGE = "purge"
PREFIX = "prefix"
INVALIDATION = "invalidation"
_KINDS = (PURGE, PREFIX, INVALIDATION)


def channel(cache: str) -> bytes:
    """
    The channel of a cache's removals, by its table's name.
    """
    return b"txrevproxy:cache:" + cache.encode("utf-8")


def encode(origin: str, kind: str, keys: Sequence[bytes]) -> bytes:
    """
    A removal as a message: JSON, the keys as latin-1 text (they are
    bytes of any value).
    """
    return json.dumps(
        {"from": origin, "kind": kind, "keys": [key.decode("latin-1") for key in keys]},
        separators=(",", ":"),
    ).encode("utf-8")


def decode(message: bytes) -> Optional[Tuple[str, str, Tuple[bytes, ...]]]:
    """
    The origin, kind and keys of a message, or L{None} for one that is
    not a removal (published by something else on the channel).
    """
    try:
        document = json.loads(message)
        origin, kind, keys = document["from"], document["kind"], document["keys"]
        if kind not in _KINDS or not isinstance(origin, str):
            return None
        return origin, kind, tuple(key.encode("latin-1") for key in keys)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeEncodeError):
        return None


class Broadcast:
    """
    The removals of one cache, sent and received through one Redis
    client.

    @ivar origin: what tells this object's messages from the others': the
        process id and a random instance id, so that two proxies in one
        process (or two hosts with the same process id) are told apart.
    """

    def __init__(self, client, cache: str, stats: CacheStats) -> None:
        """
        @param stats: the cache's counters, whose C{shared_errors} counts
            the messages that could not be published.
        """
        self._client = client
        self._channel = channel(cache)
        self._stats = stats
        self.origin = "%d:%s" % (os.getpid(), uuid.uuid4().hex)
        self._received: Optional[Callable[[bytes], None]] = None

    def listen(self, apply: Callable[[str, Tuple[bytes, ...]], None]) -> None:
        """
        Call C{apply(kind, keys)} for each removal another process
        publishes, until L{stop} (a handler listening already, the
        runtime's a reload replaces, is replaced).
        """

        def received(message: bytes) -> None:
            removal = decode(message)
            if removal is not None and removal[0] != self.origin:
                apply(removal[1], removal[2])

        self._received = received
        self._client.subscribe(self._channel, received)

    def stop(self) -> None:
        """
        Stop applying removals, unless another L{Broadcast} of the same
        cache listens now.
        """
        if self._received is not None:
            self._client.unsubscribe(self._channel, self._received)
            self._received = None

    def send(self, kind: str, keys: Sequence[bytes]) -> None:
        """
        Publish a removal made here; never waits, a failure is counted.
        """

        def lost(reason) -> None:
            self._stats.shared_errors += 1

        self._client.publish(self._channel, encode(self.origin, kind, keys)).addErrback(lost)


class BroadcastListener(Service):
    """
    Applies the removals the other processes broadcast to a cache while
    the runtime that holds it serves (a runtime made only to explain a
    request, C{txrevproxy route}, subscribes to nothing).
    """

    def __init__(self, broadcast: Broadcast, apply: Callable[[str, Tuple[bytes, ...]], None]) -> None:
        self._broadcast = broadcast
        self._apply = apply

    def startService(self) -> None:
        super().startService()
        self._broadcast.listen(self._apply)

    def stopService(self):
        self._broadcast.stop()
        return super().stopService()
