"""
C{type = "rate_limit"}: a token bucket per key.

Each key (a client address, a header's value, the route, or a
combination) has a bucket of C{burst} tokens that refills at C{rate}; a
request takes a token, and a request that finds the bucket empty is
answered C{429 Too Many Requests} with C{Retry-After} and the C{RateLimit}
fields of the IETF draft (draft-ietf-httpapi-ratelimit-headers).

Memory is bounded: a bucket that has refilled completely is the same as
no bucket, so idle keys are dropped as requests go by, and at most
C{max_keys} buckets are kept (the least recently used go first).

The buckets are this process's own (decided at once, no L{Deferred}),
unless C{store = "redis:NAME"} keeps them in Redis for every process and
instance (see L{txrevproxy.filters.shared_rate}).  Own buckets under
C{[server] workers = N} get C{1/N} of the rate and of the burst each (the
burst rounded up), so that the machine allows the configured rate: the
kernel spreads connections over the workers, roughly evenly.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Tuple

import attr
from zope.interface import implementer

from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config.redis import LOCAL, store_reference
from ..config.schema import MODEL_DEFAULT, Field, Invalid, Table, describe, expected
from ..config.values import integer, one_of
from ..interfaces import Answer, IFilter
from ..redis.client import StoreUnavailable
from ..redis.protocol import RedisError
from .client import client_address
from .shared_rate import RedisBuckets

_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)/(s|m|h)\Z")
_PER_SECOND = {"s": 1.0, "m": 60.0, "h": 3600.0}
_HEADER_KEY = re.compile(r"header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)\Z")

#: The lowercased names of the fields L{RateLimit._fields} makes, which
#: replace the backend's own.
_FIELD_NAMES = frozenset(
    (b"ratelimit-policy", b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset")
)

#: How many idle buckets each request may drop: bounded work per request.
_SWEEP = 2

#: Seconds between two log lines of Redis refusing the script: a refusal
#: (C{OOM}, C{READONLY}) is usually every request's until an operator acts.
REFUSAL_LINE_INTERVAL = 60.0


@attr.s(frozen=True, auto_attribs=True)
class Rate:
    """
    @ivar per_second: tokens added each second.
    @ivar window: the C{w} of the C{RateLimit-Policy} field, in seconds.
    @ivar count: requests per window.
    """

    per_second: float
    window: int
    count: float


def rate(value: Any) -> Rate:
    """
    C{"100/s"}, C{"6000/m"}, C{"10/h"}.
    """
    if not isinstance(value, str) or not _RATE.match(value):
        raise expected('a rate such as "100/s" or "6000/m"', value)
    count, unit = _RATE.match(value).groups()
    window = _PER_SECOND[unit]
    per_second = float(count) / window
    if per_second <= 0:
        raise Invalid("must be more than 0, got %s" % (describe(value),))
    return Rate(per_second, int(window), float(count))


def key_parts(value: Any) -> Tuple[str, ...]:
    """
    C{"client_ip"}, C{"header:NAME"}, C{"route"}, or several joined with
    C{+} (or as an array): one bucket per combination.
    """
    parts = value if isinstance(value, list) else [value]
    if not parts or not all(isinstance(part, str) for part in parts):
        raise expected(
            'a key such as "client_ip" or "client_ip+header:X-Api-Key"', value
        )
    found: List[str] = []
    for part in parts:
        for piece in part.split("+"):
            if piece not in ("client_ip", "route") and not _HEADER_KEY.match(piece):
                raise Invalid(
                    'unknown key part %s; expected "client_ip", "route" or '
                    '"header:NAME"' % (describe(piece),)
                )
            found.append(piece)
    return tuple(found)


@attr.s(frozen=True, auto_attribs=True)
class Options:
    """
    @ivar store: the C{[redis.NAME]} table the buckets are kept in, or
        L{None} for this process's memory.
    @ivar on_store_error: what a request gets while the store fails:
        C{"local"} (this process's buckets decide), C{"allow"} or
        C{"deny"} (429).
    """

    rate: Rate
    key: Tuple[str, ...] = ("client_ip",)
    burst: Optional[int] = None
    max_keys: int = 100000
    store: Optional[str] = None
    on_store_error: str = "local"

    @property
    def size(self) -> int:
        """
        The burst: C{burst}, or a second's worth of the rate.
        """
        return self.burst or max(1, math.ceil(self.rate.per_second))


OPTIONS = Table(
    Options,
    {
        "rate": Field(rate),
        "key": Field(key_parts, default="client_ip"),
        "burst": Field(integer(1), default=MODEL_DEFAULT),
        "max_keys": Field(integer(1), default=100000),
        "store": Field(lambda value: store_reference(value, None), default=LOCAL),
        "on_store_error": Field(one_of("local", "allow", "deny"), default="local"),
    },
)


def _key_function(parts: Tuple[str, ...]) -> Callable[[Any], Any]:
    """
    What the bucket of a request is chosen by.
    """
    getters = []
    for part in parts:
        if part == "client_ip":
            getters.append(client_address)
        elif part == "route":
            # Set by the router; None before routing (a listener's filter).
            getters.append(lambda request: request.route_index)
        else:
            header = part[len("header:") :].lower().encode("ascii")
            getters.append(
                lambda request, header=header: tuple(
                    request.requestHeaders.getRawHeaders(header, ())
                )
            )
    if len(getters) == 1:
        return getters[0]
    return lambda request: tuple(getter(request) for getter in getters)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


@implementer(IFilter)
class RateLimit:
    """
    A token bucket per key; see the module docstring.

    @ivar clock: the reactor's clock (C{seconds()}).
    """

    log = Logger()

    def __init__(
        self,
        options: Options,
        clock,
        workers: int = 1,
        shared: Optional[RedisBuckets] = None,
        errors: Callable[[], None] = lambda: None,
    ) -> None:
        """
        @param workers: the processes of the machine, each with buckets of
            its own: this one's get C{1/workers} of the rate and burst.
        @param shared: the buckets in Redis, when C{store} names a table.
        @param errors: called for each request decided without C{shared}
            because the store failed (it counts them in the metrics).
        """
        self.clock = clock
        burst = options.size
        self.rate = options.rate.per_second / workers
        self.burst = math.ceil(burst / workers)
        self.max_keys = options.max_keys
        self._key = _key_function(options.key)
        self._refill_time = self.burst / self.rate
        self._policy = b"%d;w=%d" % (options.rate.count, options.rate.window)
        self._limit = b"%d" % (burst,)
        self._buckets: "OrderedDict[Any, _Bucket]" = OrderedDict()
        self._shared = shared
        self._on_store_error = options.on_store_error
        self._errors = errors
        self._next_refusal_line = -math.inf

    def take(self, key) -> Tuple[bool, float, float]:
        """
        Take a token from C{key}'s bucket.

        @return: whether there was one, the tokens left, and the seconds
            until the next token (when there was none) or until the bucket
            is full again (when there was).
        """
        now = self.clock.seconds()
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(float(self.burst), now)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
            bucket.tokens = min(
                self.burst, bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
        self._dropIdle(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True, bucket.tokens, (self.burst - bucket.tokens) / self.rate
        return False, bucket.tokens, (1 - bucket.tokens) / self.rate

    def _dropIdle(self, now: float) -> None:
        buckets = self._buckets
        for _ in range(_SWEEP):
            for key in buckets:
                # The least recently used bucket, if any.
                break
            else:
                return
            if now - buckets[key].updated < self._refill_time:
                return
            del buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

    def request(self, request):
        key = self._key(request)
        shared = self._shared
        if shared is None:
            return self._verdict(self.take(key), request)
        if not shared.client.up:
            # The circuit is open: no Deferred, no wait.
            return self._fallback(key, request)
        return shared.take(key).addCallbacks(
            self._verdict,
            self._storeFailed,
            callbackArgs=(request,),
            errbackArgs=(key, request),
        )

    def _storeFailed(self, reason: Failure, key, request) -> Optional[Answer]:
        reason.trap(StoreUnavailable, RedisError)
        if reason.check(RedisError):
            now = self.clock.seconds()
            if now >= self._next_refusal_line:
                self._next_refusal_line = now + REFUSAL_LINE_INTERVAL
                self.log.error(
                    "redis.{store} refused the rate limit script: {error}; "
                    'requests are decided as on_store_error = "{fallback}" says '
                    "(logged at most once a minute)",
                    store=self._shared.client.settings.name,  # type: ignore[union-attr]
                    error=reason.getErrorMessage(),
                    fallback=self._on_store_error,
                )
        return self._fallback(key, request)

    def _fallback(self, key, request) -> Optional[Answer]:
        """
        Decide without the store, as C{on_store_error} says.
        """
        self._errors()
        if self._on_store_error == "allow":
            return None
        if self._on_store_error == "deny":
            return Answer(429, ((b"Retry-After", b"1"),))
        return self._verdict(self.take(key), request)

    def _verdict(self, decision: Tuple[bool, float, float], request) -> Optional[Answer]:
        allowed, left, wait = decision
        fields = self._fields(left, wait)
        if allowed:
            known = request.__dict__.get("rate_limit_fields")
            if known is None or left < known[0]:
                # The closest limit is the one a client should see.
                request.rate_limit_fields = (left, fields)
            return None
        retry = max(1, math.ceil(wait))
        return Answer(429, ((b"Retry-After", b"%d" % (retry,)),) + fields)

    def _fields(self, left: float, wait: float) -> Tuple[Tuple[bytes, bytes], ...]:
        return (
            (b"RateLimit-Policy", self._policy),
            (b"RateLimit-Limit", self._limit),
            (b"RateLimit-Remaining", b"%d" % (int(left),)),
            (b"RateLimit-Reset", b"%d" % (max(1, math.ceil(wait)),)),
        )

    def response(self, request, status, headers) -> None:
        known = request.__dict__.get("rate_limit_fields")
        if known is not None and status != 429:
            if not _FIELD_NAMES.isdisjoint([field[0].lower() for field in headers]):
                headers[:] = [
                    field for field in headers if field[0].lower() not in _FIELD_NAMES
                ]
            headers.extend(known[1])
        return None


def configure(options, context) -> RateLimit:
    converted = OPTIONS(options)
    if converted.store is None:
        return RateLimit(converted, context.reactor, context.workers)
    try:
        store_reference(options["store"], context.redis)
    except Invalid as invalid:
        raise Invalid(problems=[(".store", text) for _, text in invalid.problems])
    client = context.redis[converted.store]
    if client is None:  # only checking the configuration
        return RateLimit(converted, context.reactor, context.workers)
    shared = RedisBuckets(client, context.name, converted.rate.per_second, converted.size)
    if context.metrics is None:
        return RateLimit(converted, context.reactor, context.workers, shared)
    errors = context.metrics.store_errors(converted.store, context.name)
    return RateLimit(converted, context.reactor, context.workers, shared, errors)
