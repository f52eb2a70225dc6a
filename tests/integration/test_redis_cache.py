"""
A cache shared through a real redis-server by two proxies (two
L{ProxyService}s in this process, each with its own Redis client): what
one stored the other serves, a purge or an invalidation made through one
removes the other's copies, and with Redis killed both go on serving
from their memory and the origin.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import resource

from txrevproxy.app.service import ProxyService
from txrevproxy.cache.broadcast import channel
from txrevproxy.config.redis import REDIS
from txrevproxy.redis.client import RedisClient

from ..support.loopback import CountingSite, listen, raw_exchange
from ..support.redis_server import needs_redis, redis_server
from ..support.waiting import until
from .test_filters_integration import config, parse_response, request


class Pages(resource.Resource):
    """
    Fresh for a minute; C{/big} has a body larger than the Redis store
    takes.  Counts the requests for each path.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict = {}

    def render(self, request):
        self.asked[request.path] = self.asked.get(request.path, 0) + 1
        request.setHeader(b"cache-control", b"max-age=60")
        size = 4096 if request.path == b"/big" else 10
        return b"x" * size


class TwoProxies(TestCase):
    """
    Two proxies with the cache C{pages} of L{cache_table}, one origin
    (L{Pages}) and one Redis server.
    """

    cache_table = ""

    @inlineCallbacks
    def setUp(self):
        self.pages = Pages()
        port = yield listen(CountingSite(self.pages), self)
        self.redis = redis_server(self)
        text = config(
            port,
            route='cache = "pages"',
            extra='[redis.shared]\nurl = "%s"\nretry_interval = "100ms"\ntimeout = "5s"\n\n'
            "[caches.pages]\n%s" % (self.redis.url, self.cache_table),
        )
        self.a, self.b = self.start(text), self.start(text)
        self.watcher = RedisClient(REDIS({"url": self.redis.url}, name="watcher"), reactor)
        self.addCleanup(self.watcher.close)
        yield self.subscribed()

    @inlineCallbacks
    def subscribed(self):
        """
        Wait until both proxies listen to the channel, before anything is
        published.
        """
        while True:
            reply = yield self.watcher.execute(b"PUBSUB", b"NUMSUB", channel("pages"))
            if reply[1] == 2:
                break
            yield from until(lambda: True)

    def start(self, text) -> ProxyService:
        service = ProxyService(text, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def get(self, service, path=b"/page", method=b"GET"):
        raw = yield raw_exchange(service.ports[0].getHost().port, request(method, path))
        status, headers, body = parse_response(raw)
        return status, dict(headers).get(b"cache-status", b""), body


@needs_redis
class SharedCacheTests(TwoProxies):
    cache_table = 'store = "redis:shared"\nredis_max_object_size = "1KiB"\n'

    @inlineCallbacks
    def stored_in_redis(self, path=b"/page"):
        key = b"txrevproxy:cache:v1:pages:http://localhost" + path
        while not (yield self.watcher.execute(b"EXISTS", key)):
            yield from until(lambda: True)

    @inlineCallbacks
    def test_a_response_stored_by_one_proxy_is_a_hit_on_the_other(self):
        status, cache_status, _ = yield self.get(self.a)
        self.assertEqual((status, b"fwd=uri-miss" in cache_status), (200, True))
        yield self.stored_in_redis()
        status, cache_status, body = yield self.get(self.b)
        self.assertEqual((status, body), (200, b"x" * 10))
        self.assertIn(b"hit", cache_status)
        self.assertEqual(self.pages.asked, {b"/page": 1})
        self.assertEqual(self.b.metrics.cache("pages").shared_fills, 1)

    @inlineCallbacks
    def test_a_purge_through_one_proxy_removes_the_copies_of_the_other(self):
        yield self.get(self.a)
        yield self.stored_in_redis()
        yield self.get(self.b)  # now in B's memory too
        self.assertEqual(self.a.purge_cache("pages", "http://localhost/page", None), 1)
        yield from until(lambda: not self.b.runtime.caches["pages"].store.keys())
        _, cache_status, _ = yield self.get(self.b)
        self.assertIn(b"fwd=uri-miss", cache_status)
        self.assertEqual(self.pages.asked, {b"/page": 2})

    @inlineCallbacks
    def test_a_reloaded_proxy_still_gets_the_purges(self):
        self.assertEqual(self.b.reload(self.b.config), [])
        yield self.get(self.a)
        yield self.stored_in_redis()
        yield self.get(self.b)
        self.a.purge_cache("pages", "http://localhost/page", None)
        yield from until(lambda: not self.b.runtime.caches["pages"].store.keys())

    @inlineCallbacks
    def test_an_unsafe_request_through_one_proxy_invalidates_the_other(self):
        yield self.get(self.a)
        yield self.stored_in_redis()
        yield self.get(self.b)
        status, _, _ = yield self.get(self.a, method=b"POST")
        self.assertEqual(status, 200)
        yield from until(lambda: not self.b.runtime.caches["pages"].store.keys())
        self.assertEqual(self.b.metrics.cache("pages").invalidated, 1)
        _, cache_status, _ = yield self.get(self.b)
        self.assertIn(b"fwd=uri-miss", cache_status)

    @inlineCallbacks
    def test_a_large_response_stays_out_of_redis(self):
        yield self.get(self.a, b"/big")
        _, cache_status, _ = yield self.get(self.a, b"/big")
        self.assertIn(b"hit", cache_status)
        # Each proxy asks the origin: only the memory tiers have it.
        _, cache_status, _ = yield self.get(self.b, b"/big")
        self.assertIn(b"fwd=uri-miss", cache_status)
        self.assertEqual(self.pages.asked, {b"/big": 2})
        keys = yield self.watcher.execute(b"KEYS", b"txrevproxy:cache:*")
        self.assertEqual(keys, [])

    @inlineCallbacks
    def test_with_redis_killed_both_serve_from_memory_and_the_origin(self):
        yield self.get(self.a)
        yield self.stored_in_redis()
        self.redis.kill()
        _, cache_status, _ = yield self.get(self.a)
        self.assertIn(b"hit", cache_status)
        # B's memory misses and Redis is gone: the origin answers.
        answers = []
        for _ in range(3):
            answers.append((yield self.get(self.b))[:2])
        self.assertEqual([status for status, _ in answers], [200, 200, 200])
        self.assertIn(b"fwd=uri-miss", answers[0][1])
        # Then from its memory tier.
        self.assertEqual([b"hit" in cache_status for _, cache_status in answers[1:]], [True, True])
        self.assertEqual(self.pages.asked, {b"/page": 2})
        self.assertTrue(self.b.metrics.cache("pages").shared_errors >= 1)


@needs_redis
class BroadcastOnlyTests(TwoProxies):
    """
    Memory stores of their own, with only the purges broadcast.
    """

    cache_table = 'broadcast = "redis:shared"\n'

    @inlineCallbacks
    def test_each_fetches_its_own_copy_and_a_purge_reaches_both(self):
        for service in (self.a, self.b):
            yield self.get(service)
        self.assertEqual(self.pages.asked, {b"/page": 2})
        self.assertEqual(self.a.purge_cache("pages", "http://localhost/page", None), 1)
        yield from until(lambda: not self.b.runtime.caches["pages"].store.keys())
        keys = yield self.watcher.execute(b"KEYS", b"*")
        self.assertEqual(keys, [])
