"""
The subscriber connection against a real redis-server: the heartbeat's
PING is answered while subscribed and once every channel was
unsubscribed (Redis then leaves subscriber mode and answers +PONG).
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.config.redis import REDIS
from txrevproxy.redis.client import RedisClient

from ..support.redis_server import needs_redis, redis_server
from ..support.waiting import until


@needs_redis
class SubscriberHeartbeatTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.redis = redis_server(self)
        self.client = RedisClient(REDIS({"url": self.redis.url}, name="shared"), reactor)
        self.addCleanup(self.client.close)
        self.received = []
        self.client.subscribe(b"a", self.received.append)
        yield self.subscribers(1)

    @inlineCallbacks
    def subscribers(self, count: int):
        """
        Wait until Redis counts C{count} subscribers of the channel.
        """
        while True:
            reply = yield self.client.execute(b"PUBSUB", b"NUMSUB", b"a")
            if reply[1] == count:
                return
            yield from until(lambda: True)

    @inlineCallbacks
    def pinged(self):
        """
        The heartbeat, now: the connection once its PING is answered, or
        dropped as unanswered.
        """
        connection = self.client._subscriber._connection
        connection.ping()
        yield from until(
            lambda: connection.answered or not connection.transport.connected, 10
        )
        return connection

    @inlineCallbacks
    def test_a_ping_is_answered_while_subscribed_and_after_every_channel_is_forgotten(self):
        connection = yield self.pinged()
        self.assertTrue(connection.answered and connection.transport.connected)
        self.client.unsubscribe(b"a", self.client._subscriber.handlers[b"a"])
        yield self.subscribers(0)
        again = yield self.pinged()
        self.assertIs(again, connection)
        self.assertTrue(again.answered and again.transport.connected)
        self.assertTrue(self.client._subscriber.up)
