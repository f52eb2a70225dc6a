"""
C{[server] max_connections_per_ip} counted across two proxies on one real
redis-server (C{max_connections_per_ip_store}): the connections a client
holds on one count on the other, and a crashed process's stop counting
once its hash expires.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.redis import REDIS
from txrevproxy.redis.client import RedisClient
from txrevproxy.server.connection_counts import INSTANCES

from ..support.loopback import CountingSite, Echo, connect_raw, listen, raw_exchange
from ..support.redis_server import needs_redis, redis_server
from .test_filters_integration import config, parse_response, request


@needs_redis
class SharedConnectionLimitTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.backend_port = yield listen(CountingSite(Echo()), self)
        self.redis = redis_server(self)
        self.client = RedisClient(REDIS({"url": self.redis.url}, name="probe"), reactor)
        self.addCleanup(self.client.close)

    def start(self) -> int:
        service = ProxyService(
            config(
                self.backend_port,
                extra="[server]\nmax_connections_per_ip = 2\n"
                'max_connections_per_ip_store = "redis:shared"\n\n'
                '[redis.shared]\nurl = "%s"\n' % (self.redis.url,),
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        return service.ports[0].getHost().port

    @inlineCallbacks
    def counted(self, expected: int):
        """
        Wait until Redis counts C{expected} connections from 127.0.0.1 on
        the listener "web", over every process.
        """
        while True:
            total = 0
            for key in (yield self.client.execute("SMEMBERS", INSTANCES)):
                found = yield self.client.execute("HGET", key, b"web\x00127.0.0.1")
                total += int(found or 0)
            if total == expected:
                return
            yield deferLater(reactor, 0.01, lambda: None)

    @inlineCallbacks
    def test_connections_on_one_proxy_count_on_the_other(self):
        first, second = self.start(), self.start()
        held = []
        for _ in range(2):
            held.append((yield connect_raw(first)))
        for each in held:
            self.addCleanup(each.transport.loseConnection)
        yield self.counted(2)
        # The third connection, to the other proxy, is one too many.
        raw = yield raw_exchange(second, request())
        self.assertEqual(parse_response(raw)[0], 429)
        # Once one closes, the other proxy takes a connection again.
        held[0].transport.loseConnection()
        yield self.counted(1)
        raw = yield raw_exchange(second, request())
        self.assertEqual(parse_response(raw)[0], 200)

    @inlineCallbacks
    def test_a_crashed_process_stops_counting_once_its_hash_expires(self):
        port = self.start()
        # What a process that died holding two connections left behind.
        dead = b"txrevproxy:conn:elsewhere:1:dead"
        yield self.client.execute("HSET", dead, b"web\x00127.0.0.1", 2)
        yield self.client.execute("SADD", INSTANCES, dead)
        raw = yield raw_exchange(port, request())
        self.assertEqual(parse_response(raw)[0], 429)

        yield self.client.execute("PEXPIRE", dead, 1)
        exists = []
        while not exists or exists[-1]:
            exists.append((yield self.client.execute("EXISTS", dead)))
        raw = yield raw_exchange(port, request())
        self.assertEqual(parse_response(raw)[0], 200)
        # The dead process's entry was dropped from the set on the way.
        members = yield self.client.execute("SMEMBERS", INSTANCES)
        self.assertNotIn(dead, members)
