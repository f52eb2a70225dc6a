"""
Tests for L{txrevproxy.upstream.health}: the checks' requests, rise and fall, timeouts,
TCP checks, jittered starts, and the service owning the checkers; in memory
with a L{Clock} and backends on L{StringTransport}s.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import HealthCheck
from txrevproxy.upstream.health import HealthChecker

from ..support.balancing import make_balancer, memory_backend, server
from ..support.loopback import proxy_config

UP = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
DOWN = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"


def checker(count=2, seed=0, **check):
    clock = Clock()
    balancer = make_balancer([server(n) for n in range(1, count + 1)], clock=clock)
    health = HealthChecker(balancer, HealthCheck(**check), clock, random.Random(seed))
    health.startService()
    return clock, balancer, health


def start_round(clock, health):
    """
    Run the clock to the start of the next round of checks.
    """
    clock.advance(health.check.interval)


def answer(balancer, index, response):
    """
    Answer the latest check of backend C{index}.
    """
    endpoint = balancer.backends[index].pool.endpoint
    endpoint.connections[-1].dataReceived(response)


def test_the_first_round_starts_at_a_random_point_of_the_first_interval():
    delays = set()
    for seed in range(5):
        clock, balancer, _ = checker(seed=seed, interval=10.0)
        [first] = clock.getDelayedCalls()
        assert 0 <= first.getTime() < 10
        delays.add(first.getTime())
        clock.advance(first.getTime())
        assert [b.pool.endpoint.attempts for b in balancer.backends] == [1, 1]
    assert len(delays) == 5


def test_an_http_check_is_a_get_of_the_path_with_the_host():
    clock, balancer, health = checker(path="/healthz?deep=1", host="app.internal")
    start_round(clock, health)
    sent = balancer.backends[0].pool.endpoint.connections[-1].transport.value()
    assert sent == (
        b"GET /healthz?deep=1 HTTP/1.1\r\nHost: app.internal\r\n"
        b"User-Agent: txrevproxy-health-check\r\nConnection: close\r\n\r\n"
    )
    # Without a host, the backend's own.
    clock, balancer, health = checker()
    start_round(clock, health)
    sent = balancer.backends[1].pool.endpoint.connections[-1].transport.value()
    assert sent.startswith(b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\n")


def test_fall_failed_checks_take_a_backend_out_and_rise_passed_ones_bring_it_back():
    clock, balancer, health = checker(rise=2, fall=3, interval=5.0)
    backend = balancer.backends[0]
    start_round(clock, health)
    for round_ in range(3):
        assert backend.healthy, round_
        answer(balancer, 0, DOWN)
        answer(balancer, 1, UP)
        start_round(clock, health)
    assert not backend.healthy
    assert backend.last_check == "failed: HTTP 503"
    assert balancer.state()["backends"][0]["healthy"] is False
    answer(balancer, 0, UP)
    answer(balancer, 1, UP)
    assert not backend.healthy
    start_round(clock, health)
    answer(balancer, 0, UP)
    assert backend.healthy
    assert backend.last_check == "passed: HTTP 200"


def test_a_passed_check_starts_the_fall_count_again():
    clock, balancer, health = checker(fall=2)
    start_round(clock, health)
    for response in [DOWN, UP, DOWN, UP]:
        answer(balancer, 0, response)
        answer(balancer, 1, UP)
        start_round(clock, health)
    assert balancer.backends[0].healthy


def test_expected_statuses():
    clock, balancer, health = checker(fall=1, statuses=("2xx", "404"))
    start_round(clock, health)
    answer(balancer, 0, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    answer(balancer, 1, b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
    assert [backend.healthy for backend in balancer.backends] == [True, False]


def test_a_check_without_an_answer_within_timeout_fails():
    clock, balancer, health = checker(fall=1, timeout=2.0, interval=5.0)
    start_round(clock, health)
    answer(balancer, 1, UP)
    clock.advance(2)
    backend = balancer.backends[0]
    assert not backend.healthy
    assert backend.last_check == "failed: no answer within 2s"
    # The check's connection is dropped.
    assert backend.pool.endpoint.connections[-1].transport.disconnecting
    # Rounds start every interval.
    clock.advance(2.9)
    assert backend.pool.endpoint.attempts == 1
    clock.advance(0.1)
    assert backend.pool.endpoint.attempts == 2


def test_a_connection_not_made_within_timeout_fails_the_check():
    clock, balancer, health = checker(fall=1, timeout=2.0)
    endpoint = balancer.backends[0].pool.endpoint
    endpoint.hang = True
    start_round(clock, health)
    clock.advance(2)
    assert endpoint.pending[0].called
    assert not balancer.backends[0].healthy
    assert balancer.backends[0].last_check == "failed: no answer within 2s"


def test_a_refused_connection_fails_the_check():
    clock, balancer, health = checker(fall=1)
    balancer.backends[0].pool.endpoint.refuse = True
    start_round(clock, health)
    assert not balancer.backends[0].healthy
    assert balancer.backends[0].last_check.startswith("failed: Connection was refused")


def test_tcp_checks_connect_and_close():
    clock, balancer, health = checker(type="tcp", fall=1, rise=1)
    balancer.backends[1].pool.endpoint.refuse = True
    start_round(clock, health)
    connection = balancer.backends[0].pool.endpoint.connections[-1]
    assert connection.transport.value() == b""
    assert connection.transport.disconnecting
    assert [backend.healthy for backend in balancer.backends] == [True, False]
    assert balancer.backends[0].last_check == "passed: connected"
    balancer.backends[1].pool.endpoint.refuse = False
    start_round(clock, health)
    assert balancer.backends[1].healthy


def test_stopping_cancels_the_timers_and_the_checks_in_progress():
    clock, balancer, health = checker(fall=1)
    start_round(clock, health)
    health.stopService()
    assert clock.getDelayedCalls() == []
    assert all(backend.healthy for backend in balancer.backends)
    # Stopped before its first round: nothing is left either.
    clock, _, health = checker()
    health.stopService()
    assert clock.getDelayedCalls() == []


def test_the_proxy_service_starts_and_stops_the_health_checkers():
    reactor = MemoryReactorClock()
    config = proxy_config([9001], health=HealthCheck(interval=3.0))
    service = ProxyService(config, reactor)
    service.startService()
    [health] = [child for child in service if isinstance(child, HealthChecker)]
    assert health.running
    assert health.balancer is service.runtime.balancers["app"]
    service.stopService()
    assert not health.running
    assert not [call for call in reactor.getDelayedCalls() if call.active()]


def test_a_backend_that_joins_is_checked_and_one_that_left_is_forgotten():
    clock, balancer, health = checker(fall=1, interval=5.0)
    start_round(clock, health)
    answer(balancer, 0, DOWN)
    answer(balancer, 1, UP)
    gone = balancer.backends[0]
    assert not gone.healthy
    joined = memory_backend(server(3), clock)
    balancer.change([joined], [gone])
    start_round(clock, health)
    assert gone.pool.endpoint.attempts == 1
    assert joined.pool.endpoint.attempts == 1
    answer(balancer, 1, DOWN)
    assert not joined.healthy
    assert joined.last_check == "failed: HTTP 503"
    assert gone not in health._failed
