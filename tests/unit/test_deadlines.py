"""
Tests for the timeouts after a response started (read, send, total; see
L{txrevproxy.upstream.deadlines}) and the route's own timeouts, in memory:
the pools' sweep runs on a L{MemoryReactorClock}.
"""

from __future__ import annotations

from txrevproxy.forward.exchange import DONE
from txrevproxy.upstream.connection import CLOSED
from txrevproxy.upstream.deadlines import DeadlineSweep, expired

from ..support.configs import document, parse, problems
from ..support.proxies import GET, Proxy, status

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def proxy_with(**timeouts) -> Proxy:
    proxy = Proxy(count=1)
    target = proxy.site.resource.target
    for name, value in timeouts.items():
        setattr(target, name, value)
    return proxy


def start(proxy):
    channel, client = proxy.client(GET)
    request = channel.requests[-1]
    return request, request.handler, client, proxy.connection(0)


def test_a_stalled_body_resets_the_client_and_drops_the_backend_connection():
    proxy = proxy_with(read_timeout=1.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(CHUNKED_HEAD + b"3\r\nabc\r\n")
    proxy.clock.pump([1.0] * 4)
    assert exchange._state is DONE
    assert request.timed_out == "read"
    assert client.disconnecting
    assert not client.value().endswith(b"0\r\n\r\n")
    assert backend.state is CLOSED and backend.transport.disconnecting
    assert proxy.balancer.backends[0].pool.idle_count == 0
    assert proxy.balancer.in_flight == 0


def test_a_slow_but_steady_backend_is_not_cut():
    proxy = proxy_with(read_timeout=1.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(CHUNKED_HEAD)
    for _ in range(20):
        proxy.clock.advance(0.5)
        backend.dataReceived(b"1\r\nx\r\n")
    backend.dataReceived(b"0\r\n\r\n")
    assert request.timed_out is None
    assert client.value().endswith(b"0\r\n\r\n")
    assert proxy.balancer.backends[0].pool.idle_count == 1


def test_a_partial_head_that_stalls_is_a_504():
    proxy = proxy_with(read_timeout=1.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-")
    proxy.clock.pump([1.0] * 4)
    assert status(client) == b"HTTP/1.1 504 Gateway Timeout"
    assert request.timed_out == "read"
    assert backend.state is CLOSED


def test_a_client_that_stops_reading_is_reset_after_the_send_timeout():
    proxy = proxy_with(send_timeout=1.0, read_timeout=100.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    exchange.pauseProducing()
    proxy.clock.pump([1.0] * 4)
    assert request.timed_out == "send"
    assert client.disconnecting
    assert backend.state is CLOSED


def test_a_paused_client_does_not_count_as_a_stalled_backend():
    proxy = proxy_with(send_timeout=10.0, read_timeout=1.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    exchange.pauseProducing()
    proxy.clock.pump([1.0] * 5)
    exchange.resumeProducing()
    proxy.clock.advance(0.5)
    backend.dataReceived(b"cd")
    assert request.timed_out is None
    assert client.value().endswith(b"abcd")


def test_the_total_deadline_before_the_head_is_a_504():
    proxy = proxy_with(total_timeout=2.0)
    request, exchange, client, backend = start(proxy)
    proxy.clock.pump([1.0] * 4)
    assert status(client) == b"HTTP/1.1 504 Gateway Timeout"
    assert request.timed_out == "total"


def test_the_total_deadline_mid_body_resets_the_client():
    proxy = proxy_with(total_timeout=2.0)
    request, exchange, client, backend = start(proxy)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(6):
        backend.dataReceived(b"x")
        proxy.clock.advance(0.5)
    proxy.clock.pump([1.0] * 2)
    assert request.timed_out == "total"
    assert client.disconnecting
    assert backend.state is CLOSED


def test_a_response_timeout_is_named():
    proxy = proxy_with(response_timeout=5.0)
    request, exchange, client, backend = start(proxy)
    proxy.clock.advance(5)
    assert status(client) == b"HTTP/1.1 504 Gateway Timeout"
    assert request.timed_out == "response"


def test_expired_prefers_the_total_deadline_and_ignores_reads_while_paused():
    class Target:
        read_timeout = 1.0
        send_timeout = 5.0

    assert expired(Target, 10.0, 9.0, None, 9.5) == "total"
    assert expired(Target, 10.0, 0.0, 7.0, 1.0) is None
    assert expired(Target, 10.0, 0.0, 5.0, 1.0) == "send"
    assert expired(Target, 10.0, 0.0, None, 9.0) == "read"
    assert expired(Target, 10.0, 0.0, None, None) is None


def test_the_sweep_stops_without_connections():
    proxy = Proxy(count=1)
    sweep = DeadlineSweep(proxy.clock, set(), [])
    sweep.start()
    proxy.clock.advance(1)
    assert not proxy.clock.getDelayedCalls()


SERVERS = 'servers = [{ url = "http://127.0.0.1:9001" }]'


def test_timeouts_default_and_a_route_value_wins():
    config = parse(
        document(
            upstream=SERVERS + '\nread_timeout = "30s"',
            route='upstream = "app"\nread_timeout = "5m"\nsend_timeout = "2s"',
        )
    )
    upstream, route = config.upstreams["app"], config.routes[0]
    assert (upstream.read_timeout, upstream.send_timeout) == (30.0, 60.0)
    assert upstream.total_timeout is None
    assert route.timeout(upstream, "read_timeout") == 300.0
    assert route.timeout(upstream, "send_timeout") == 2.0
    assert route.timeout(upstream, "response_timeout") == 60.0


def test_a_bad_timeout_is_reported_with_its_key_path():
    found = problems(
        document(
            upstream=SERVERS + '\nsend_timeout = "soon"',
            route='upstream = "app"\ntotal_timeout = "0s"',
        )
    )
    assert any(p.startswith("upstreams.app.send_timeout: ") for p in found), found
    assert any(p.startswith("routes[0].total_timeout: ") for p in found), found


def test_a_route_timeout_needs_an_upstream():
    found = problems(document(route='respond = { status = 204 }\nread_timeout = "1s"'))
    assert "routes[0].read_timeout: only a route with an upstream can use it" in found
