"""
The shared second tier of a cache with C{store = "redis:NAME"}: small
complete responses kept in Redis for every process and instance, behind
each one's memory store.

A primary key is a Redis hash, one field per Vary variant, whose expiry
is the longest that any of its responses may still be served (fresh,
or stale within C{stale-while-revalidate} or C{stale-if-error}).  Writes
and deletions never delay a response: their failures are only counted.
The format version is in the key, so that a proxy of another version
reading the same Redis sees nothing rather than something it misreads.
"""

from __future__ import annotations

import json
from typing import List, Optional, Sequence

from twisted.internet.defer import Deferred

from ..observe.metrics import CacheStats
from ..redis.client import Script
from . import policy
from .freshness import freshness
from .policy import Timing
from .store import StoredResponse
from .targeted import Targets

#: The format of the values, part of every key.
VERSION = b"v1"

#: Stores a variant, and makes the hash live at least as long as it.
_PUT = Script(
    b"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    b"local ttl = tonumber(ARGV[3])\n"
    b"if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end\n"
    b"return 1\n"
)

#: The characters a SCAN pattern gives a meaning to.
_GLOB = {ord(c): "\\" + c for c in "*?[]\\"}


def _text(values: Sequence[bytes]) -> List[str]:
    return [value.decode("latin-1") for value in values]


def _bytes(values: Sequence[str]) -> tuple:
    return tuple(value.encode("latin-1") for value in values)


def variant_field(response: StoredResponse) -> bytes:
    """
    The hash field of a response's Vary variant.
    """
    return json.dumps(
        [_text(response.vary_fields), _text(response.vary_values)], separators=(",", ":")
    ).encode("latin-1")


def dump(response: StoredResponse) -> bytes:
    """
    A complete response with a L{bytes} body as one value: a line of JSON
    (status, reason, fields, Vary, timing), then the body as it is.
    """
    head = {
        "s": response.status,
        "r": response.reason.decode("latin-1"),
        "h": [_text(field) for field in response.headers],
        "vf": _text(response.vary_fields),
        "vv": _text(response.vary_values),
        "t": [response.timing.request_time, response.timing.response_time],
    }
    return json.dumps(head, separators=(",", ":")).encode("latin-1") + b"\n" + response.body


def load(key: bytes, value: bytes) -> Optional[StoredResponse]:
    """
    The response L{dump} made, or L{None} for a value it did not make.
    """
    head, newline, body = value.partition(b"\n")
    if not newline:
        return None
    try:
        fields = json.loads(head)
        return StoredResponse(
            key=key,
            vary_fields=_bytes(fields["vf"]),
            vary_values=_bytes(fields["vv"]),
            status=int(fields["s"]),
            reason=fields["r"].encode("latin-1"),
            headers=tuple(_bytes(field) for field in fields["h"]),
            body=body,
            timing=Timing(float(fields["t"][0]), float(fields["t"][1])),
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeEncodeError):
        return None


def shared_lifetime(
    response: StoredResponse, targets: Targets, default_ttl: float, now: float
) -> float:
    """
    How much longer, in seconds, a response may be served by anyone: what
    remains of its freshness, plus the longer of its
    C{stale-while-revalidate} and C{stale-if-error} windows.
    """
    known = freshness(response, targets, default_ttl)
    windows = [
        policy.delta_seconds(known.directives, name) or 0
        for name in (b"stale-while-revalidate", b"stale-if-error")
    ]
    return known.lifetime - known.age(now) + max(windows)


class RedisTier:
    """
    The responses of one cache in a C{[redis.NAME]} table.

    @ivar max_object_size: the largest body kept in Redis.
    """

    def __init__(self, client, cache: str, max_object_size: int, stats: CacheStats) -> None:
        """
        @param client: the table's L{txrevproxy.redis.client.RedisClient}.
        @param stats: the cache's counters: C{shared_fills} and
            C{shared_errors}.
        """
        self._client = client
        self._prefix = b"txrevproxy:cache:" + VERSION + b":" + cache.encode("utf-8") + b":"
        self.max_object_size = max_object_size
        self._stats = stats

    def _failed(self, reason) -> None:
        self._stats.shared_errors += 1

    def variants(self, key: bytes) -> Deferred:
        """
        The responses kept for a primary key, most recent first; none
        when Redis fails (within the table's C{timeout}, or at once while
        its circuit is open).
        """

        def loaded(reply) -> List[StoredResponse]:
            found = [load(key, value) for value in (reply or [])[1::2]]
            responses = [response for response in found if response is not None]
            responses.sort(key=lambda response: -response.timing.response_time)
            self._stats.shared_fills += len(responses)
            return responses

        def failed(reason) -> List[StoredResponse]:
            self._failed(reason)
            return []

        return self._client.execute(b"HGETALL", self._prefix + key).addCallbacks(loaded, failed)

    def put(self, response: StoredResponse, lifetime: float) -> None:
        """
        Keep a response for C{lifetime} seconds, if it is complete (not a
        piece of one), kept in memory, small enough, and servable for at
        least a second.
        """
        body = response.body
        if (
            response.status == 206
            or not isinstance(body, bytes)
            or len(body) > self.max_object_size
            or lifetime < 1
        ):
            return
        self._client.evalsha(
            _PUT,
            (self._prefix + response.key,),
            (variant_field(response), dump(response), int(lifetime)),
        ).addErrback(self._failed)

    def remove(self, keys: Sequence[bytes]) -> None:
        """
        Forget what is kept for primary keys.
        """
        self._client.execute(b"DEL", *[self._prefix + key for key in keys]).addErrback(
            self._failed
        )

    def remove_prefix(self, prefix: bytes) -> None:
        """
        Forget what is kept for every primary key starting with C{prefix}:
        a SCAN of the keys, deleted a batch at a time.
        """
        pattern = (self._prefix + prefix).decode("latin-1").translate(_GLOB) + "*"

        def scanned(reply) -> Optional[Deferred]:
            cursor, keys = reply
            if keys:
                self._client.execute(b"DEL", *keys).addErrback(self._failed)
            if cursor != b"0":
                return scan(cursor)
            return None

        def scan(cursor: bytes) -> Deferred:
            return self._client.execute(
                b"SCAN", cursor, b"MATCH", pattern.encode("latin-1"), b"COUNT", 1000
            ).addCallback(scanned)

        scan(b"0").addErrback(self._failed)
