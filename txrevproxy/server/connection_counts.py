"""
The open connections of each client address, for C{[server]
max_connections_per_ip}: in the site's process (L{ConnectionCounts}), or
across every process and instance that shares a Redis server
(C{max_connections_per_ip_store = "redis:NAME"}, L{SharedConnectionCounts}).

Accepting a connection never waits for Redis.  Each process counts its
own connections at once, as without Redis, and tells Redis of each change
in the background; Redis answers with the count of the address across
every process, and what the others hold is added to this process's own
count when the next connection from that address is judged.  So a
process always knows its own connections exactly and the others' as of
its last exchange with Redis about that address: an address may get one
connection more than the limit on each process that had none of its
connections yet, and more in a burst faster than a round trip to Redis.

A crashed process must not leave its connections counted: each process
keeps its counts in a hash of its own (C{txrevproxy:conn:INSTANCE}) that
expires unless refreshed, and every L{SYNC_INTERVAL} seconds writes its
whole count there again, which also repairs what a Redis outage or
restart lost.
"""

from __future__ import annotations

import os
import socket
from typing import Dict, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from ..redis.client import RedisClient, Script

#: Seconds between two writes of a process's whole count.
SYNC_INTERVAL = 10.0

#: Seconds a process's counts outlive its last write: a crashed process's
#: connections stop counting this long after it died.
EXPIRY = 30

#: The set of every process's hash.
INSTANCES = b"txrevproxy:conn:instances"

#: KEYS[1]: this process's hash; KEYS[2]: the set of hashes.  ARGV: the
#: field (listener and address), the change, the expiry.  Returns the
#: field's count across the hashes that have not expired.
CHANGE = Script(
    b"""
local count = redis.call("HINCRBY", KEYS[1], ARGV[1], ARGV[2])
if count <= 0 then redis.call("HDEL", KEYS[1], ARGV[1]) end
redis.call("EXPIRE", KEYS[1], ARGV[3])
redis.call("SADD", KEYS[2], KEYS[1])
local total = 0
for _, key in ipairs(redis.call("SMEMBERS", KEYS[2])) do
  local found = redis.call("HGET", key, ARGV[1])
  if found then
    total = total + tonumber(found)
  elseif redis.call("EXISTS", key) == 0 then
    redis.call("SREM", KEYS[2], key)
  end
end
return total
"""
)

#: KEYS as for L{CHANGE}; ARGV: the expiry, then field and count pairs.
SYNC = Script(
    b"""
redis.call("DEL", KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call("EXPIRE", KEYS[1], ARGV[1])
redis.call("SADD", KEYS[2], KEYS[1])
return 0
"""
)


class ConnectionCounts:
    """
    The open connections of each address on one listener, in this process.
    """

    def __init__(self) -> None:
        self.counts: Dict[bytes, int] = {}

    def count(self, address: bytes, change: int) -> Optional[Deferred]:
        """
        Count a connection from C{address} opening (C{+1}) or closing
        (C{-1}).

        @return: L{None}, or, when L{total} is not known yet for an
            address with a new connection, a L{Deferred} that fires once
            it is.
        """
        counts = self.counts
        count = counts.get(address, 0) + change
        if count > 0:
            counts[address] = count
        else:
            counts.pop(address, None)

    def total(self, address: bytes) -> int:
        """
        The open connections from C{address}.
        """
        return self.counts.get(address, 0)


class _SharedListenerCounts(ConnectionCounts):
    """
    One listener's counts, told to Redis as they change; the total adds
    what the other processes held when Redis last answered.
    """

    def __init__(self, shared: "SharedConnectionCounts", listener: str) -> None:
        super().__init__()
        self._shared = shared
        self._prefix = listener.encode("utf-8") + b"\0"
        self._others: Dict[bytes, int] = {}

    def count(self, address: bytes, change: int) -> Optional[Deferred]:
        super().count(address, change)
        if address not in self.counts:
            # Learnt again with the next connection from there: what is
            # known of an address is only kept while it has connections
            # here, so memory stays bounded by them.
            self._others.pop(address, None)
        unknown = change > 0 and address not in self._others
        answer = self._shared.change(self._prefix + address, change)
        answer.addCallback(self._answered, address)
        return answer if unknown else None

    def _answered(self, total: Optional[int], address: bytes) -> None:
        own = self.counts.get(address)
        if total is not None and own is not None:
            self._others[address] = max(0, total - own)

    def total(self, address: bytes) -> int:
        return self.counts.get(address, 0) + self._others.get(address, 0)

    def fields(self) -> Dict[bytes, int]:
        return {self._prefix + address: count for address, count in self.counts.items()}


def instance_key() -> bytes:
    """
    This process's hash: its host, process ID and a random part (a PID
    may be used again after a restart).
    """
    return b"txrevproxy:conn:%s:%d:%s" % (
        socket.gethostname().encode("utf-8", "replace"),
        os.getpid(),
        os.urandom(4).hex().encode("ascii"),
    )


class SharedConnectionCounts(Service):
    """
    This process's connection counts in Redis, for every listener; a
    service, since it writes them all again every L{SYNC_INTERVAL}
    seconds while it runs.  Kept across reloads with its client.
    """

    def __init__(self, client: RedisClient, clock, key: Optional[bytes] = None) -> None:
        self.client = client
        self._clock = clock
        self._key = instance_key() if key is None else key
        self._listeners: Dict[str, _SharedListenerCounts] = {}
        self._sync: Optional[LoopingCall] = None

    def listener(self, name: str) -> ConnectionCounts:
        """
        The counts of the listener C{name}, the same across reloads.
        """
        counts = self._listeners.get(name)
        if counts is None:
            counts = self._listeners[name] = _SharedListenerCounts(self, name)
        return counts

    def change(self, field: bytes, change: int) -> Deferred:
        """
        Tell Redis; fires with the field's count across every process, or
        L{None} when Redis did not answer (the next write repairs it).
        """
        return self.client.evalsha(
            CHANGE, (self._key, INSTANCES), (field, change, EXPIRY)
        ).addErrback(lambda _: None)

    def sync(self) -> Deferred:
        """
        Write every count of this process again, replacing what Redis has.
        """
        arguments: List[object] = [EXPIRY]
        for counts in self._listeners.values():
            for field, count in counts.fields().items():
                arguments += [field, count]
        return self.client.evalsha(SYNC, (self._key, INSTANCES), arguments).addErrback(
            lambda _: None
        )

    def startService(self) -> None:
        super().startService()
        self._sync = LoopingCall(self.sync)
        self._sync.clock = self._clock
        self._sync.start(SYNC_INTERVAL, now=False)

    def stopService(self):
        super().stopService()
        if self._sync is not None and self._sync.running:
            self._sync.stop()
        self._sync = None
