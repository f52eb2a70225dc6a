"""
Rate-limit buckets kept in Redis (C{store = "redis:NAME"}), shared by
every process and instance that uses the same server: the generic cell
rate algorithm (GCRA), a token bucket that stores one number per key, run
as one Lua script, so a request costs one round trip and two proxies can
never both take the last token.

Time is Redis's (C{TIME} in the script), not the proxies': instances
whose clocks differ still share one bucket correctly.
"""

from __future__ import annotations

from typing import Any, Tuple

from twisted.internet.defer import Deferred

from ..redis.client import RedisClient, Script

#: KEYS[1]: the key's theoretical arrival time (microseconds of Redis
#: time); ARGV[1]: microseconds per token; ARGV[2]: the burst.  Returns
#: whether the request may go, the tokens left, and the microseconds
#: until the next token (refused) or until the bucket is full (allowed).
GCRA = Script(
    b"""
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then tat = now end
local after = tat + interval
local earliest = after - interval * burst
if earliest > now then
  return {0, 0, earliest - now}
end
redis.call("SET", KEYS[1], string.format("%.0f", after), "PX",
           math.ceil((after - now) / 1000))
return {1, math.floor((now - earliest) / interval), after - now}
"""
)

#: The prefix of every rate-limit key.
PREFIX = b"txrevproxy:rl:"


def key_bytes(key: Any) -> bytes:
    """
    A bucket's key (see L{txrevproxy.filters.rate_limit}) as bytes that
    every instance spells the same: a combination joined with NUL, which
    no address, route index or header value contains.
    """
    if isinstance(key, tuple):
        return b"\0".join(key_bytes(part) for part in key)
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if key is None:
        return b""
    return b"%d" % (key,)


class RedisBuckets:
    """
    The buckets of one C{rate_limit} filter in Redis.
    """

    def __init__(self, client: RedisClient, name: str, per_second: float, burst: int) -> None:
        self.client = client
        self._prefix = PREFIX + name.encode("utf-8") + b":"
        self._arguments = (max(1, round(1e6 / per_second)), burst)

    def take(self, key: Any) -> Deferred:
        """
        Take a token from C{key}'s bucket.

        @return: a L{Deferred} firing with what
            L{txrevproxy.filters.rate_limit.RateLimit.take} returns, or
            failing as L{RedisClient.execute} does.
        """
        return self.client.evalsha(
            GCRA, (self._prefix + key_bytes(key),), self._arguments
        ).addCallback(_decision)


def _decision(reply) -> Tuple[bool, float, float]:
    allowed, left, wait = reply
    return bool(allowed), float(left), wait / 1e6
