"""
A cache's Redis tier and broadcast without a server (a fake client that
records its calls and lets the test answer them): the value format, the
lifetime in Redis, what is kept out, the memory tier filled on a miss,
and removals published and applied.
"""

from __future__ import annotations

from typing import List

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from txrevproxy.cache import broadcast
from txrevproxy.cache.broadcast import Broadcast, BroadcastListener
from txrevproxy.cache.policy import Timing
from txrevproxy.cache.redis_tier import RedisTier, dump, load, shared_lifetime
from txrevproxy.cache.shared import SharedCache, build_caches
from txrevproxy.cache.store import MemoryStore, StoredResponse
from txrevproxy.cache.targeted import Targets
from txrevproxy.config.model import CacheSettings
from txrevproxy.observe.metrics import CacheStats
from txrevproxy.redis.client import StoreUnavailable

from ..support.stored_responses import response

KEY = b"http://example.test/p"


def stored(cache_control: bytes = b"max-age=60", body: bytes = b"ok", **changes) -> StoredResponse:
    fields = dict(
        key=KEY,
        vary_fields=(b"accept-language",),
        vary_values=(b"fr",),
        status=200,
        reason=b"OK",
        headers=((b"cache-control", cache_control), (b"x-odd", b"\xe9\n")),
        body=body,
        timing=Timing(100.0, 100.0),
    )
    fields.update(changes)
    return StoredResponse(**fields)


class FakeRedis:
    """
    A client whose calls wait for the test's answer.
    """

    def __init__(self) -> None:
        self.calls: List[tuple] = []
        self.subscribed = {}
        self.unsubscribed: List[bytes] = []
        self.down = False

    def execute(self, *arguments) -> Deferred:
        if self.down:
            return fail(StoreUnavailable("down"))
        answer: Deferred = Deferred()
        self.calls.append((arguments, answer))
        return answer

    def evalsha(self, script, keys, arguments) -> Deferred:
        return self.execute(b"EVALSHA", *keys, *arguments)

    def publish(self, channel, message) -> Deferred:
        return self.execute(b"PUBLISH", channel, message)

    def subscribe(self, channel, handler) -> None:
        self.subscribed[channel] = handler

    def unsubscribe(self, channel, handler) -> None:
        if self.subscribed.get(channel) is handler:
            del self.subscribed[channel]
            self.unsubscribed.append(channel)

    def commands(self) -> List[bytes]:
        return [arguments[0] for arguments, _ in self.calls]


def test_a_response_survives_the_round_trip_through_its_value():
    original = stored(body=b"line\nbinary \x00\xff")
    assert load(KEY, dump(original)) == original


@pytest.mark.parametrize("value", [b"no newline", b"{}\nbody", b"[1]\n", b"\xff\n"])
def test_a_value_it_did_not_write_is_no_response(value):
    assert load(KEY, value) is None


@pytest.mark.parametrize(
    "cache_control, now, lifetime",
    [
        (b"max-age=60", 100, 60),
        (b"max-age=60", 130, 30),
        (b"max-age=60, stale-while-revalidate=30, stale-if-error=600", 100, 660),
        (b"no-cache", 100, 0),
    ],
)
def test_lifetime_in_redis_is_freshness_left_plus_stale_windows(cache_control, now, lifetime):
    got = shared_lifetime(stored(cache_control), Targets.of(CacheSettings("c")), 0, now)
    assert got == pytest.approx(lifetime)


def cache(redis: FakeRedis) -> SharedCache:
    """
    A cache with a Redis store on C{redis}, listening to its broadcast.
    """
    stats = CacheStats()
    shared = SharedCache(
        CacheSettings("pages", store="redis:shared"),
        MemoryStore(1 << 20),
        Clock(),
        stats,
        RedisTier(redis, "pages", 1024, stats),
        Broadcast(redis, "pages", stats),
    )
    shared.broadcast.listen(shared.removed_elsewhere)
    return shared


def test_kept_responses_go_to_redis_with_their_lifetime():
    redis = FakeRedis()
    shared = cache(redis)
    shared.clock.advance(100)
    shared.keep(stored())
    (arguments, _), = redis.calls
    assert arguments[:2] == (b"EVALSHA", b"txrevproxy:cache:v1:pages:" + KEY)
    assert load(KEY, arguments[3]) == stored()
    assert arguments[4] == 60


@pytest.mark.parametrize(
    "kept, lifetime",
    [
        (stored(body=b"x" * 1025), 60),  # over redis_max_object_size
        (stored(cache_control=b"no-cache"), 0.5),  # under a second left
        (stored(status=206, headers=((b"content-range", b"bytes 0-1/10"),)), 60),
    ],
)
def test_what_stays_out_of_redis(kept, lifetime):
    redis = FakeRedis()
    RedisTier(redis, "pages", 1024, CacheStats()).put(kept, lifetime)
    assert redis.calls == []


def test_a_memory_hit_does_not_ask_redis():
    redis = FakeRedis()
    shared = cache(redis)
    shared.store.put(stored())
    assert shared.filling(KEY) is None
    assert redis.calls == []


def test_a_memory_miss_waits_for_one_lookup_that_fills_the_memory():
    redis = FakeRedis()
    shared = cache(redis)
    first, second = shared.filling(KEY), shared.filling(KEY)
    (arguments, answer), = redis.calls
    assert arguments == (b"HGETALL", b"txrevproxy:cache:v1:pages:" + KEY)
    older = stored(vary_values=(b"en",), timing=Timing(1.0, 2.0))
    answer.callback([b"v1", dump(older), b"v2", dump(stored()), b"v3", b"garbage"])
    assert (first.called, second.called) == (True, True)
    assert shared.store.variants(KEY) == [stored(), older]
    assert shared.metrics.shared_fills == 2


def test_a_backend_request_in_flight_is_waited_for_instead_of_redis():
    redis = FakeRedis()
    shared = cache(redis)
    shared.fetches[KEY] = object()
    assert shared.filling(KEY) is None


def test_a_purge_while_redis_answers_keeps_its_answer_out():
    redis = FakeRedis()
    shared = cache(redis)
    waiting = shared.filling(KEY)
    (_, answer), = redis.calls[:1]
    shared.purge(KEY.decode())
    answer.callback([b"v", dump(stored())])
    assert waiting.called
    assert shared.store.keys() == {}


def test_redis_down_is_a_miss_at_once_and_counted():
    redis = FakeRedis()
    redis.down = True
    shared = cache(redis)
    waiting = shared.filling(KEY)
    assert waiting.called
    assert shared.store.keys() == {}
    shared.keep(stored())
    assert shared.metrics.shared_errors == 2


def test_a_purge_is_deleted_in_redis_and_published():
    redis = FakeRedis()
    shared = cache(redis)
    shared.store.put(stored())
    assert shared.purge(KEY.decode()) == 1
    assert redis.commands() == [b"DEL", b"PUBLISH"]
    assert redis.calls[0][0][1:] == (b"txrevproxy:cache:v1:pages:" + KEY,)
    origin, kind, keys = broadcast.decode(redis.calls[1][0][2])
    assert (origin, kind, keys) == (shared.broadcast.origin, "purge", (KEY,))


def test_an_invalidation_publishes_every_key_it_removes():
    redis = FakeRedis()
    shared = cache(redis)
    shared.invalidate(KEY, [b"/other", b"https://elsewhere.test/x"])
    published = broadcast.decode(redis.calls[-1][0][2])
    assert published[1:] == ("invalidation", (KEY, b"http://example.test/other"))


def test_a_prefix_purge_scans_redis_and_deletes_what_matches():
    redis = FakeRedis()
    shared = cache(redis)
    shared.purge_prefix("http://example.test/p*")
    (arguments, answer) = redis.calls[0]
    assert arguments[:4] == (b"SCAN", b"0", b"MATCH", b"txrevproxy:cache:v1:pages:http://example.test/p\\**")
    answer.callback([b"7", [b"k1"]])
    answer = redis.calls[-1][1]
    assert [c[0][0] for c in redis.calls[-2:]] == [b"DEL", b"SCAN"]
    answer.callback([b"0", []])
    assert redis.commands() == [b"SCAN", b"PUBLISH", b"DEL", b"SCAN"]


def test_a_removal_from_elsewhere_is_applied_and_not_published_again():
    redis = FakeRedis()
    shared = cache(redis)
    shared.store.put(stored())
    handler = redis.subscribed[broadcast.channel("pages")]
    handler(broadcast.encode("other", "purge", [KEY]))
    assert shared.store.keys() == {}
    assert shared.metrics.purged == 1
    assert redis.calls == []


def test_its_own_messages_and_strangers_are_ignored():
    redis = FakeRedis()
    shared = cache(redis)
    shared.store.put(stored())
    handler = redis.subscribed[broadcast.channel("pages")]
    handler(broadcast.encode(shared.broadcast.origin, "purge", [KEY]))
    handler(b"not json")
    handler(b'{"from": "x", "kind": "drop-all", "keys": []}')
    assert shared.store.keys() == {KEY: 1}


def test_a_prefix_removal_from_elsewhere_removes_the_matching_keys():
    redis = FakeRedis()
    shared = cache(redis)
    shared.store.put(response(KEY))
    shared.store.put(response(b"http://example.test/q"))
    redis.subscribed[broadcast.channel("pages")](
        broadcast.encode("other", "prefix", [b"http://example.test/p"])
    )
    assert list(shared.store.keys()) == [b"http://example.test/q"]


def test_a_redis_store_is_a_memory_tier_that_a_reload_keeps():
    redis = FakeRedis()
    settings = {"pages": CacheSettings("pages", store="redis:shared")}
    first = build_caches(settings, Clock(), {}, redis={"shared": redis})["pages"]
    assert isinstance(first.store, MemoryStore)
    assert isinstance(first.shared, RedisTier) and isinstance(first.broadcast, Broadcast)
    again = build_caches(settings, Clock(), {"pages": first}, redis={"shared": redis})["pages"]
    assert again.store is first.store


def test_the_listener_of_the_runtime_serving_gets_the_messages():
    redis = FakeRedis()
    old, new = cache(redis), cache(redis)
    channel = broadcast.channel("pages")
    old_listener = BroadcastListener(old.broadcast, old.removed_elsewhere)
    new_listener = BroadcastListener(new.broadcast, new.removed_elsewhere)
    old_listener.startService()
    new_listener.startService()
    old_listener.stopService()  # a reload stops the old one: the new one stays
    new.store.put(stored())
    redis.subscribed[channel](broadcast.encode("other", "purge", [KEY]))
    assert new.store.keys() == {}
    new_listener.stopService()
    assert redis.unsubscribed == [channel]


def test_a_memory_cache_has_no_redis_tier_nor_broadcast():
    pages = build_caches({"pages": CacheSettings("pages")}, Clock(), {})["pages"]
    assert (pages.shared, pages.broadcast, pages.filling(KEY)) == (None, None, None)
