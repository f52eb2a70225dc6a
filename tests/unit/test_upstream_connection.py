"""
Tests for the state machine of L{txrevproxy.upstream.connection}: each
transition of L{UpstreamProtocol.state}, over a L{StringTransport}, with
what the exchange hears and where the connection goes after.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from txrevproxy.http.response_parser import IResponseSink, ResponseParseError
from txrevproxy.interfaces import IUpstreamExchange
from txrevproxy.upstream.connection import (
    AWAITING,
    CLOSED,
    EARLY_RESPONSE,
    IDLE,
    READING,
    SENDING,
    TUNNEL,
)
from txrevproxy.upstream.health import _HTTPCheck
from txrevproxy.upstream.pool import ConnectionPool

from ..support.endpoints import FakeEndpoint
from ..support.exchanges import RecordingExchange

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


@pytest.fixture
def clock():
    return MemoryReactorClock()


@pytest.fixture
def pool(clock):
    return ConnectionPool(clock, FakeEndpoint(), "http://backend", 30.0, 4)


@pytest.fixture
def conn(pool):
    results = []
    pool.connect().addCallback(results.append)
    return results[0]


def lose(conn):
    conn.connectionLost(Failure(ConnectionLost()))


def test_a_new_connection_is_idle_and_provides_the_parsers_sink(conn):
    assert conn.state is IDLE
    assert conn.exchange is None
    assert verifyObject(IResponseSink, conn)


def test_response_in_one_read_returns_the_connection_to_the_pool(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    assert conn.state is AWAITING
    conn.dataReceived(OK)
    assert exchange.events == ["started", ("head", 200, 5), ("body", b"hello"), "end"]
    assert exchange.held == exchange.released == 1
    assert conn.state is IDLE and conn.exchange is None and conn.reused
    assert pool.take_idle() is conn


def test_response_in_many_reads_starts_once_and_holds_writes_per_read(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    states = []
    for i in range(len(OK)):
        conn.dataReceived(OK[i : i + 1])
        states.append(conn.state)
    assert exchange.events.count("started") == 1
    assert exchange.events[-1] == "end"
    assert b"".join(e[1] for e in exchange.events if e[0] == "body") == b"hello"
    head_end = OK.index(b"\r\n\r\n") + 4
    assert states[: head_end - 1] == [AWAITING] * (head_end - 1)
    assert states[head_end - 1 : -1] == [READING] * (len(OK) - head_end)
    assert states[-1] is IDLE
    assert exchange.held == exchange.released == len(OK)
    assert pool.idle_count == 1


def test_chunked_response_body_over_many_reads(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    assert conn.state is READING
    conn.dataReceived(b"lo\r\n")
    conn.dataReceived(b"1\r\n!\r\n0\r\n")
    assert conn.state is READING
    conn.dataReceived(b"\r\n")
    assert exchange.events == [
        "started",
        ("head", 200, None),
        ("body", b"hel"),
        ("body", b"lo"),
        ("body", b"!"),
        "end",
    ]
    assert conn.state is IDLE and pool.idle_count == 1


def test_an_interim_response_leaves_the_final_head_awaited(conn):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    assert conn.state is AWAITING
    conn.dataReceived(OK)
    assert exchange.events == [
        "started",
        "started",
        ("head", 200, 5),
        ("body", b"hello"),
        "end",
    ]


def test_request_body_sending_then_awaiting(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"POST / HTTP/1.1\r\n\r\n", False, b"5")
    assert conn.state is SENDING
    conn.sendBody(b"hello")
    conn.finishBody()
    assert conn.state is AWAITING
    conn.dataReceived(OK)
    assert conn.state is IDLE and pool.idle_count == 1


def test_response_during_upload_that_ends_first_closes_the_connection(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"POST / HTTP/1.1\r\n\r\n", False, b"10")
    conn.sendBody(b"abc")
    conn.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nno")
    assert conn.state is EARLY_RESPONSE
    conn.sendBody(b"def")
    conn.dataReceived(b"!")
    assert exchange.events[-1] == "end"
    assert conn.state is CLOSED and conn.transport.disconnecting
    assert pool.idle_count == 0


def test_upload_that_ends_during_the_response_keeps_the_connection(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"POST / HTTP/1.1\r\n\r\n", False, b"3")
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh")
    assert conn.state is EARLY_RESPONSE
    conn.sendBody(b"abc")
    conn.finishBody()
    assert conn.state is READING
    conn.dataReceived(b"i")
    assert conn.state is IDLE and pool.take_idle() is conn


def test_connection_lost_while_awaiting_fails_the_exchange_once(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    lose(conn)
    assert exchange.events == [("failed", ConnectionLost)]
    assert conn.state is CLOSED and conn.exchange is None
    assert pool.busy_count == 0


def test_connection_lost_while_reading_fails_the_exchange_once(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    lose(conn)
    assert exchange.events[-1] == ("failed", ConnectionLost)
    assert [e for e in exchange.events if e[0] == "failed"] == [("failed", ConnectionLost)]
    assert conn.state is CLOSED and pool.busy_count == 0


def test_connection_lost_ends_a_close_delimited_response(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\n\r\nabc")
    lose(conn)
    assert exchange.events[-2:] == [("body", b"abc"), "end"]
    assert conn.state is CLOSED and pool.idle_count == 0


def test_connection_lost_while_idle_tells_nobody_and_leaves_the_pool(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(OK)
    lose(conn)
    assert exchange.events[-1] == "end"
    assert conn.state is CLOSED
    assert pool.idle_count == 0 and pool.take_idle() is None


def test_bytes_from_the_backend_while_idle_drop_the_connection(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(OK)
    assert pool.idle_count == 1
    conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
    assert conn.state is CLOSED
    assert conn.transport.disconnected
    # Out of the pool at once, before the loss is reported.
    assert pool.idle_count == 0 and pool.take_idle() is None
    lose(conn)
    assert exchange.events[-1] == "end"


def test_an_invalid_response_fails_the_exchange_once(conn, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(b"NOT HTTP\r\n\r\n")
    lose(conn)
    assert exchange.events == ["started", ("failed", ResponseParseError)]
    assert exchange.held == exchange.released == 1
    assert conn.state is CLOSED and conn.transport.disconnected


def test_an_exchange_that_aborts_mid_read_hears_nothing_more(conn, pool):
    """
    The client went away while the head was written: the rest of the read
    reaches nobody, and the aborted connection is never pooled.
    """
    exchange = RecordingExchange()
    exchange.on_head = lambda status: conn.abort()
    conn.sendHead(exchange, GET, False, None)
    conn.dataReceived(OK)
    lose(conn)
    assert exchange.events == ["started", ("head", 200, 5)]
    assert exchange.held == exchange.released == 1
    assert conn.state is CLOSED and conn.transport.disconnected
    assert pool.idle_count == 0


def test_response_timeout_while_awaiting(conn, clock):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.awaitResponse(clock, 5)
    clock.advance(4)
    assert exchange.events == []
    clock.advance(1)
    assert exchange.events == ["timed out"]


def test_response_timer_lapses_once_the_exchange_stops_awaiting(conn, clock):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.awaitResponse(clock, 5)
    conn.dataReceived(b"HTTP/1.1 200")
    conn.stopAwaiting()
    clock.advance(5)
    assert exchange.events == ["started"]
    assert conn.state is AWAITING


def test_response_timer_lapses_on_an_idle_connection(conn, clock, pool):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None)
    conn.awaitResponse(clock, 5)
    conn.dataReceived(OK)
    clock.advance(5)
    assert "timed out" not in exchange.events
    assert conn.state is IDLE and pool.idle_count == 1


def test_switching_protocols_makes_a_tunnel_that_never_returns_to_the_pool(
    conn, pool
):
    exchange = RecordingExchange()
    conn.sendHead(exchange, GET, False, None, upgrade=True)
    conn.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nfirst"
    )
    assert conn.state is TUNNEL
    conn.dataReceived(b"second")
    assert exchange.events == [
        "started",
        ("head", 101, 0),
        ("upgraded", b"first"),
        ("tunnel", b"second"),
    ]
    lose(conn)
    assert exchange.events[-1] == ("failed", ConnectionLost)
    assert pool.idle_count == 0 and pool.busy_count == 0


def test_the_pool_closes_idle_connections_it_does_not_keep(conn, pool):
    conn.sendHead(RecordingExchange(), GET, False, None)
    conn.dataReceived(OK)
    pool.close()
    assert conn.state is CLOSED and conn.transport.disconnecting


def test_health_check_is_an_upstream_exchange(pool):
    check = _HTTPCheck(GET)
    assert verifyObject(IUpstreamExchange, check)
    statuses = []
    check.run(pool).addCallback(statuses.append)
    conn = pool.endpoint.connections[-1]
    assert conn.exchange is check and conn.state is AWAITING
    conn.dataReceived(OK)
    assert statuses == [200]
    assert conn.state is IDLE


def test_a_connection_told_it_is_the_last_closes_after_the_response(clock):
    """
    C{sendHead(..., last=True)}: a reusable response still leaves the
    connection closed, never back in the pool.
    """
    pool = ConnectionPool(clock, FakeEndpoint(), "http://backend", 10.0, 4)
    connection = []
    pool.connect().addCallback(connection.append)
    [protocol] = connection
    exchange = RecordingExchange()
    protocol.sendHead(exchange, GET, False, b"5", last=True)
    protocol.sendBody(b"hello")
    protocol.finishBody()
    protocol.dataReceived(OK)
    assert exchange.events[-1] == "end"
    assert protocol.state is CLOSED
    assert pool.idle_count == 0
