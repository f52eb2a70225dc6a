"""
Tests for L{txrevproxy.upstream.pool} and L{txrevproxy.upstream.connection}: reuse
of clean connections only, the idle sweeper, and the request framing sent
to backends, in memory.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from txrevproxy.interfaces import IBackendPool
from txrevproxy.upstream.connection import UpstreamProtocol
from txrevproxy.upstream.h2pool import H2ConnectionPool
from txrevproxy.upstream.pool import ConnectionPool

from ..support.endpoints import FakeEndpoint
from ..support.exchanges import RecordingExchange


def make_pool(idle_timeout=10.0, max_idle=4):
    clock = MemoryReactorClock()
    endpoint = FakeEndpoint()
    pool = ConnectionPool(clock, endpoint, "http://backend", idle_timeout, max_idle)
    return clock, endpoint, pool


def connect(pool):
    results = []
    pool.connect().addCallback(results.append)
    return results[0]


def test_both_kinds_of_pool_provide_the_interface():
    """
    The exchanges, the balancer and the health checks use a backend's pool
    through L{IBackendPool}, whichever protocol it speaks.
    """
    _, _, pool = make_pool()
    assert verifyObject(IBackendPool, pool)
    assert verifyObject(IBackendPool, pool.health_pool(MemoryReactorClock()))
    h2 = H2ConnectionPool(MemoryReactorClock(), FakeEndpoint(), "http://b", 10.0, 100, b"http")
    assert verifyObject(IBackendPool, h2)
    assert verifyObject(IBackendPool, h2.health_pool(MemoryReactorClock()))
    assert h2.proxy_protocol is None and h2.proxy_header(None, None) is None


def test_clean_exchange_returns_connection_to_pool_and_it_is_reused():
    clock, endpoint, pool = make_pool()
    conn = connect(pool)
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", False, None)
    assert conn.transport.value() == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert exchange.events == ["started", ("head", 200, 2), ("body", b"ok"), "end"]
    assert pool.idle_count == 1 and pool.busy_count == 0
    assert pool.take_idle() is conn
    assert conn.reused
    assert len(endpoint.connections) == 1


def response_timers(clock, conn):
    return [
        call
        for call in clock.getDelayedCalls()
        if call.func == conn._responseTimedOut and call.active()
    ]


def send_get(conn, clock, timeout):
    """
    Send a GET on C{conn} and await its response for C{timeout} seconds,
    as an exchange does; return the exchange.
    """
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.awaitResponse(clock, timeout)
    return exchange


def test_one_timer_per_connection_times_each_exchange_from_its_request():
    clock, _, pool = make_pool()
    conn = connect(pool)
    first = send_get(conn, clock, 30)
    clock.advance(20)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.stopAwaiting()
    timer = conn._response_timer
    second = send_get(conn, clock, 30)
    # The first exchange's timer, pushed back rather than replaced.
    assert conn._response_timer is timer
    assert len(response_timers(clock, conn)) == 1
    clock.advance(29)
    assert second.events == []
    clock.advance(1)
    assert second.events == ["timed out"]
    assert first.events[-1] == "end"


def test_a_timer_that_comes_due_after_the_response_started_lapses():
    clock, _, pool = make_pool()
    conn = connect(pool)
    exchange = send_get(conn, clock, 5)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.stopAwaiting()
    clock.advance(10)
    assert "timed out" not in exchange.events
    assert conn._response_timer is None
    conn.connectionLost(Failure(ConnectionResetError()))
    assert response_timers(clock, conn) == []


def test_connection_close_response_is_not_pooled():
    _, _, pool = make_pool()
    conn = connect(pool)
    conn.sendHead(RecordingExchange(), b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert pool.idle_count == 0
    assert conn.transport.disconnecting


def test_response_before_whole_upload_closes_connection():
    _, _, pool = make_pool()
    conn = connect(pool)
    conn.sendHead(RecordingExchange(), b"POST / HTTP/1.1\r\n\r\n", False, b"10")
    conn.sendBody(b"abc")
    conn.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert pool.idle_count == 0
    assert conn.transport.disconnecting


def test_chunked_upload_framing():
    _, _, pool = make_pool()
    conn = connect(pool)
    conn.sendHead(RecordingExchange(), b"HEAD-BYTES", False, b"chunked")
    conn.sendBody(b"hello")
    conn.sendBody(b"!")
    conn.finishBody()
    assert conn.transport.value() == b"HEAD-BYTES5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"


def test_invalid_response_fails_exchange_and_drops_connection():
    _, _, pool = make_pool()
    conn = connect(pool)
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.dataReceived(b"NOT HTTP\r\n\r\n")
    assert exchange.events[-1][0] == "failed"
    assert conn.transport.disconnecting or conn.transport.disconnected
    assert pool.idle_count == 0


def test_connection_lost_mid_body_fails_exchange():
    _, _, pool = make_pool()
    conn = connect(pool)
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.connectionLost(Failure(ConnectionResetError()))
    assert exchange.events[-1] == ("failed", ConnectionResetError)
    assert pool.busy_count == 0


def test_close_delimited_response_completes_on_close():
    _, _, pool = make_pool()
    conn = connect(pool)
    exchange = RecordingExchange()
    conn.sendHead(exchange, b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\n\r\nabc")
    conn.connectionLost(Failure(ConnectionResetError()))
    assert exchange.events[-2:] == [("body", b"abc"), "end"]


def test_idle_connection_closed_by_backend_leaves_pool():
    _, _, pool = make_pool()
    conn = connect(pool)
    conn.sendHead(RecordingExchange(), b"GET / HTTP/1.1\r\n\r\n", False, None)
    conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert pool.idle_count == 1
    conn.connectionLost(Failure(ConnectionResetError()))
    assert pool.idle_count == 0
    assert pool.take_idle() is None


def test_sweeper_closes_connections_idle_past_the_timeout():
    clock, _, pool = make_pool(idle_timeout=10.0)
    first, second = connect(pool), connect(pool)
    for conn in (first, second):
        conn.sendHead(RecordingExchange(), b"GET / HTTP/1.1\r\n\r\n", False, None)
    first.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    clock.advance(6)
    second.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    clock.advance(4)
    assert first.transport.disconnecting and not second.transport.disconnecting
    clock.advance(6)
    assert second.transport.disconnecting
    assert not clock.getDelayedCalls()


def test_idle_connections_beyond_max_idle_are_closed():
    _, _, pool = make_pool(max_idle=1)
    first, second = connect(pool), connect(pool)
    for conn in (first, second):
        conn.sendHead(RecordingExchange(), b"GET / HTTP/1.1\r\n\r\n", False, None)
        conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert pool.idle_count == 1
    assert second.transport.disconnecting


def test_close_drops_idle_connections_and_refuses_later_ones():
    clock, _, pool = make_pool()
    idle, busy = connect(pool), connect(pool)
    for conn in (idle, busy):
        conn.sendHead(RecordingExchange(), b"GET / HTTP/1.1\r\n\r\n", False, None)
    idle.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    pool.close()
    assert idle.transport.disconnecting
    busy.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert busy.transport.disconnecting
    assert pool.idle_count == 0
    assert not clock.getDelayedCalls()


def test_upstream_protocol_is_the_pools():
    _, _, pool = make_pool()
    assert isinstance(connect(pool), UpstreamProtocol)
