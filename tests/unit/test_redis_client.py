"""
The Redis client without a server: RESP2 replies parsed and commands
encoded, replies matched to pipelined commands in order, and the pool's
handshake, timeout and circuit breaker on a L{Clock}.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from txrevproxy.config.redis import REDIS
from txrevproxy.redis.client import RedisClient, Script, StoreUnavailable
from txrevproxy.redis.protocol import (
    INCOMPLETE,
    ProtocolError,
    RedisError,
    RedisProtocol,
    encode_command,
    parse_reply,
)


@pytest.mark.parametrize(
    "data, reply",
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$0\r\n\r\n", b""),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*3\r\n:1\r\n:0\r\n$2\r\nab\r\n", [1, 0, b"ab"]),
        (b"*2\r\n*1\r\n:1\r\n$-1\r\n", [[1], None]),
    ],
)
def test_replies_parse(data, reply):
    assert parse_reply(data) == (reply, len(data))


def test_error_reply_is_an_exception_value():
    error, end = parse_reply(b"-NOSCRIPT No matching script\r\n")
    assert isinstance(error, RedisError) and str(error) == "NOSCRIPT No matching script"


@pytest.mark.parametrize(
    "data", [b"", b"+OK", b"$5\r\nhel", b"$5\r\nhello", b"*2\r\n:1\r\n", b"*2\r\n:1\r\n$3\r\nab"]
)
def test_a_partial_reply_waits_for_more(data):
    assert parse_reply(data) == (INCOMPLETE, 0)


@pytest.mark.parametrize("data", [b"?what\r\n", b":x\r\n", b"+" + b"a" * (70 * 1024)])
def test_bytes_that_are_not_resp2_are_refused(data):
    with pytest.raises(ProtocolError):
        parse_reply(data)


def test_commands_are_arrays_of_bulk_strings():
    assert encode_command([b"SET", "clé", 10]) == (
        b"*3\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n10\r\n"
    )


def connected() -> RedisProtocol:
    protocol = RedisProtocol()
    protocol.makeConnection(StringTransport())
    return protocol


def test_pipelined_replies_fire_their_commands_in_order():
    protocol = connected()
    first, second, third = (protocol.execute(b"GET", key) for key in (b"a", b"b", b"c"))
    assert protocol.transport.value().count(b"GET") == 3
    results = []
    for d in (first, second, third):
        d.addBoth(results.append)
    protocol.dataReceived(b"$1\r\n1\r\n-ERR wr")
    protocol.dataReceived(b"ong type\r\n$-")
    protocol.dataReceived(b"1\r\n")
    assert results[0] == b"1"
    assert results[1].check(RedisError) and str(results[1].value) == "ERR wrong type"
    assert results[2] is None


def test_a_cancelled_command_drops_its_reply():
    protocol = connected()
    cancelled = protocol.execute(b"GET", b"a")
    cancelled.addErrback(lambda _: None)
    cancelled.cancel()
    waiting = protocol.execute(b"GET", b"b")
    protocol.dataReceived(b"$1\r\na\r\n$1\r\nb\r\n")
    assert waiting.result == b"b"


def test_lost_connection_fails_what_waits_and_what_comes():
    protocol = connected()
    waiting = protocol.execute(b"PING")
    protocol.connectionLost(Failure(ConnectionLost()))
    assert waiting.result.check(ConnectionLost)
    waiting.addErrback(lambda _: None)
    later = protocol.execute(b"PING")
    assert later.result.check(ConnectionLost)
    later.addErrback(lambda _: None)


def test_garbage_from_the_server_closes_the_connection():
    protocol = connected()
    protocol.execute(b"PING").addErrback(lambda _: None)
    protocol.dataReceived(b"?\r\n")
    assert protocol.transport.disconnecting or protocol.transport.disconnected


# The pool --------------------------------------------------------------------


class HeldEndpoint:
    """
    An endpoint whose connection attempts the test ends, with a protocol
    on a L{StringTransport} or a failure.
    """

    def __init__(self) -> None:
        self.attempts = []

    def connect(self, factory):
        attempt = Deferred()
        self.attempts.append((factory, attempt))
        return attempt

    def succeed(self):
        factory, attempt = self.attempts[-1]
        protocol = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        attempt.callback(protocol)
        return protocol

    def fail(self):
        self.attempts[-1][1].errback(ConnectionRefusedError())


def client(clock, **table):
    settings = REDIS({"url": "redis://127.0.0.1/0", "pool_size": 1, **table}, name="shared")
    endpoint = HeldEndpoint()
    return RedisClient(settings, clock, endpoint), endpoint


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_handshake_authenticates_and_selects_before_commands():
    redis, endpoint = client(Clock(), url="redis://app:s3cret@127.0.0.1/2")
    result = redis.execute(b"GET", b"k")
    protocol = endpoint.succeed()
    sent = protocol.transport.value()
    assert sent == b"".join(
        encode_command(c) for c in ([b"AUTH", b"app", b"s3cret"], [b"SELECT", 2], [b"PING"])
    )
    protocol.transport.clear()
    protocol.dataReceived(b"+OK\r\n+OK\r\n+PONG\r\n")
    assert protocol.transport.value() == encode_command([b"GET", b"k"])
    protocol.dataReceived(b"$1\r\nv\r\n")
    assert result.result == b"v"


def test_password_key_overrides_the_url():
    redis, endpoint = client(Clock(), url="redis://:old@127.0.0.1", password="new")
    redis.execute(b"PING")
    assert endpoint.succeed().transport.value().startswith(encode_command([b"AUTH", b"new"]))


def test_refused_authentication_takes_the_server_as_down():
    redis, endpoint = client(Clock(), password="wrong")
    result = redis.execute(b"PING")
    endpoint.succeed().dataReceived(b"-WRONGPASS invalid\r\n+PONG\r\n")
    assert result.result.check(StoreUnavailable)
    result.addErrback(lambda _: None)
    assert not redis.up


def test_timeout_opens_the_circuit_until_a_background_connection_works(logged):
    clock = Clock()
    redis, endpoint = client(clock, timeout="100ms", retry_interval="1s")
    slow = redis.execute(b"PING")
    protocol = endpoint.succeed()
    protocol.dataReceived(b"+PONG\r\n")
    clock.advance(0.1)
    assert slow.result.check(StoreUnavailable)
    assert "no answer within 0.1s" in str(slow.result.value)
    slow.addErrback(lambda _: None)
    assert not redis.up and not protocol.transport.connected

    # While down: every call fails at once, no connection is tried.
    for _ in range(3):
        fast = redis.execute(b"PING")
        assert fast.result.check(StoreUnavailable)
        fast.addErrback(lambda _: None)
    assert len(endpoint.attempts) == 1

    clock.advance(1)
    endpoint.fail()  # the first retry fails: try again later
    assert not redis.up
    clock.advance(1)
    endpoint.succeed().dataReceived(b"+PONG\r\n")
    assert redis.up
    messages = [e["log_format"] for e in logged if e.get("log_namespace", "").endswith("RedisClient")]
    assert len(messages) == 2
    assert "down (" in messages[0] and "connected again" in messages[1]


def test_script_is_sent_by_sha_and_loaded_when_unknown():
    redis, endpoint = client(Clock())
    script = Script(b"return 1")
    result = redis.evalsha(script, [b"k"], [5])
    protocol = endpoint.succeed()
    protocol.dataReceived(b"+PONG\r\n")
    assert protocol.transport.value().endswith(
        encode_command([b"EVALSHA", script.sha, 1, b"k", 5])
    )
    protocol.transport.clear()
    protocol.dataReceived(b"-NOSCRIPT No matching script.\r\n")
    assert protocol.transport.value() == encode_command([b"EVAL", b"return 1", 1, b"k", 5])
    protocol.dataReceived(b":1\r\n")
    assert result.result == 1


def test_close_stops_retrying():
    clock = Clock()
    redis, endpoint = client(clock)
    redis.execute(b"PING").addErrback(lambda _: None)
    endpoint.fail()
    redis.close()
    assert not clock.getDelayedCalls()


def test_a_server_that_accepts_but_never_answers_the_handshake_is_tried_again(logged):
    clock = Clock()
    redis, endpoint = client(clock, timeout="100ms", connect_timeout="1s", retry_interval="1s")
    redis.execute(b"PING").addErrback(lambda _: None)
    silent = endpoint.succeed()  # connected, but no +PONG ever comes
    clock.advance(0.1)
    assert not redis.up
    clock.advance(0.9)
    assert not silent.transport.connected
    clock.advance(1)
    assert len(endpoint.attempts) == 2
    endpoint.succeed().dataReceived(b"+PONG\r\n")
    assert redis.up
    assert not clock.getDelayedCalls()


def test_close_fails_the_calls_waiting_for_a_connection_at_once():
    clock = Clock()
    redis, endpoint = client(clock)
    waiting = redis.execute(b"PING")
    redis.close()
    assert waiting.result.check(StoreUnavailable)
    waiting.addErrback(lambda _: None)
    assert not clock.getDelayedCalls()
