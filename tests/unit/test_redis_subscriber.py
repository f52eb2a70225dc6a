"""
The subscriber connection of a Redis client, without a server: it
subscribes after the handshake, hands on the messages of its channels,
and after a loss reconnects with a doubling backoff and subscribes again,
saying so once.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from txrevproxy.redis.protocol import encode_command
from txrevproxy.redis.subscriber import HEARTBEAT, MAX_BACKOFF

from .test_redis_client import client, logged  # noqa: F401 (a fixture)


def message(channel: bytes, payload: bytes) -> bytes:
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel),
        channel,
        len(payload),
        payload,
    )


def subscribed(clock, **table):
    """
    A client subscribed to C{a}, on its handshaken connection.
    """
    redis, endpoint = client(clock, **table)
    received = []
    redis.subscribe(b"a", received.append)
    protocol = endpoint.succeed()
    assert protocol.transport.value() == encode_command([b"PING"])
    protocol.transport.clear()
    protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.value() == encode_command([b"SUBSCRIBE", b"a"])
    protocol.dataReceived(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
    return redis, endpoint, protocol, received


def test_messages_of_a_channel_reach_its_handler():
    redis, endpoint, protocol, received = subscribed(Clock())
    other = []
    redis.subscribe(b"b", other.append)
    assert protocol.transport.value().endswith(encode_command([b"SUBSCRIBE", b"b"]))
    protocol.dataReceived(message(b"a", b"one") + message(b"b", b"two") + message(b"c", b"x"))
    assert (received, other) == ([b"one"], [b"two"])
    assert protocol.transport.connected


def test_subscribing_again_replaces_the_handler_without_a_command():
    redis, endpoint, protocol, received = subscribed(Clock())
    protocol.transport.clear()
    newer = []
    redis.subscribe(b"a", newer.append)
    assert protocol.transport.value() == b""
    protocol.dataReceived(message(b"a", b"one"))
    assert (received, newer) == ([], [b"one"])


def test_a_lost_connection_is_retried_with_backoff_and_resubscribed(logged):  # noqa: F811
    clock = Clock()
    redis, endpoint, protocol, received = subscribed(clock, retry_interval="1s")
    redis.subscribe(b"b", lambda _: None)
    protocol.transport.loseConnection()
    assert len(endpoint.attempts) == 1
    clock.advance(1)
    endpoint.fail()
    clock.advance(1.5)
    assert len(endpoint.attempts) == 2  # the second wait is 2s
    clock.advance(0.5)
    again = endpoint.succeed()
    again.dataReceived(b"+PONG\r\n")
    assert again.transport.value().endswith(encode_command([b"SUBSCRIBE", b"a", b"b"]))
    again.dataReceived(message(b"a", b"back"))
    assert received == [b"back"]
    formats = [event.get("log_format", "") for event in logged]
    assert sum("subscriber down" in each for each in formats) == 1
    assert sum("subscribed again" in each for each in formats) == 1


def test_the_backoff_stops_doubling_at_its_maximum():
    clock = Clock()
    redis, endpoint, protocol, _ = subscribed(clock, retry_interval="10s")
    protocol.transport.loseConnection()
    for _ in range(4):
        clock.advance(MAX_BACKOFF)
        endpoint.fail()
    attempts = len(endpoint.attempts)
    clock.advance(MAX_BACKOFF)
    assert len(endpoint.attempts) == attempts + 1


def test_close_ends_the_subscription_and_the_retries():
    clock = Clock()
    redis, endpoint, protocol, _ = subscribed(clock)
    redis.close()
    assert not protocol.transport.connected
    clock.advance(60)
    assert len(endpoint.attempts) == 1


def test_publish_is_a_command_of_the_pool():
    redis, endpoint = client(Clock())
    published = redis.publish(b"a", b"hello")
    protocol = endpoint.succeed()
    protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.value().endswith(encode_command([b"PUBLISH", b"a", b"hello"]))
    protocol.dataReceived(b":2\r\n")
    assert published.result == 2


def test_forgetting_a_channel_unsubscribes_unless_replaced():
    redis, endpoint, protocol, received = subscribed(Clock())
    handler = received.append
    redis.subscribe(b"a", handler)
    protocol.transport.clear()
    redis.unsubscribe(b"a", lambda _: None)  # not its handler: kept
    assert protocol.transport.value() == b""
    redis.unsubscribe(b"a", handler)
    assert protocol.transport.value() == encode_command([b"UNSUBSCRIBE", b"a"])
    protocol.dataReceived(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n" + message(b"a", b"late"))
    assert received == [] and protocol.transport.connected


def test_a_connection_made_after_every_channel_was_forgotten_subscribes_nothing():
    redis, endpoint = client(Clock())
    handler = [].append
    redis.subscribe(b"a", handler)
    redis.unsubscribe(b"a", handler)
    protocol = endpoint.succeed()
    protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.value() == encode_command([b"PING"])
    assert protocol.transport.connected


def test_a_connection_that_does_not_answer_its_ping_is_made_again():
    clock = Clock()
    redis, endpoint, protocol, received = subscribed(clock)
    protocol.transport.clear()
    clock.advance(HEARTBEAT)
    assert protocol.transport.value() == encode_command([b"PING"])
    protocol.dataReceived(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    clock.advance(HEARTBEAT)
    assert protocol.transport.connected  # answered: pinged again
    clock.advance(HEARTBEAT)
    assert not protocol.transport.connected
    clock.advance(1)
    assert len(endpoint.attempts) == 2


def test_a_connection_whose_every_channel_was_forgotten_keeps_answering_its_ping():
    # Out of subscriber mode, Redis answers PING with +PONG, not a push.
    clock = Clock()
    redis, endpoint, protocol, received = subscribed(clock)
    redis.unsubscribe(b"a", received.append)
    protocol.dataReceived(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n")
    for _ in range(3):
        protocol.transport.clear()
        clock.advance(HEARTBEAT)
        assert protocol.transport.value() == encode_command([b"PING"])
        protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.connected and redis._subscriber.up
    assert len(endpoint.attempts) == 1


def test_a_subscriber_whose_handshake_is_never_answered_connects_again(logged):  # noqa: F811
    clock = Clock()
    redis, endpoint = client(clock, connect_timeout="1s", retry_interval="1s")
    received = []
    redis.subscribe(b"a", received.append)
    silent = endpoint.succeed()
    clock.advance(1)
    assert not silent.transport.connected and not redis._subscriber.up
    assert "no connection ready within 1s" in logged[-1]["reason"]
    clock.advance(1)
    protocol = endpoint.succeed()
    protocol.transport.clear()
    protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.value() == encode_command([b"SUBSCRIBE", b"a"])
