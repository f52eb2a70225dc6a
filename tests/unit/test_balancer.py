"""
Tests for L{txrevproxy.upstream.balancer}: the queue for backends at their
C{max_connections} and its timeout, draining, outlier detection with its
back-off and cap, sticky sessions, the retry budget and the visible state;
all in memory with a L{Clock}.
"""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from txrevproxy.config.model import OutlierDetection, Sticky
from txrevproxy.upstream.balancer import (
    ABANDONED,
    BROKEN,
    CONNECT_FAILED,
    MIN_RETRIES,
    SUCCESS,
    TIMEOUT,
    NoBackendAvailable,
)

from ..support.balancing import FakeRequest, hold, make_balancer, pick, server


def outcome(d):
    """
    What a Deferred fired with so far: a lease, a failure (then handled),
    or None.
    """
    if not d.called:
        return None
    result = d.result
    d.addErrback(lambda failure: None)
    return result


# Queueing


def limited(clock, queue_size=2, queue_timeout=5.0):
    return make_balancer(
        [server(1, max_connections=1), server(2, max_connections=1)],
        clock=clock,
        queue_size=queue_size,
        queue_timeout=queue_timeout,
    )


def test_requests_beyond_max_connections_wait_and_are_served_in_order():
    clock = Clock()
    balancer = limited(clock)
    first, second = hold(balancer), hold(balancer)
    waiting = [balancer.acquire(FakeRequest()) for _ in range(2)]
    assert [outcome(d) for d in waiting] == [None, None]
    assert balancer.queued == 2
    second.release()
    lease = outcome(waiting[0])
    assert lease.backend is second.backend
    assert outcome(waiting[1]) is None
    first.release()
    assert outcome(waiting[1]).backend is first.backend
    assert balancer.queued == 0


def test_a_full_queue_refuses_at_once():
    balancer = limited(Clock(), queue_size=1)
    hold(balancer), hold(balancer)
    balancer.acquire(FakeRequest())
    failure = outcome(balancer.acquire(FakeRequest()))
    assert failure.check(NoBackendAvailable)
    assert failure.value.retry_after == 5


def test_a_waiting_request_times_out_with_no_backend_available():
    clock = Clock()
    balancer = limited(clock, queue_timeout=2.5)
    hold(balancer), hold(balancer)
    d = balancer.acquire(FakeRequest())
    clock.advance(2.4)
    assert outcome(d) is None
    clock.advance(0.1)
    failure = outcome(d)
    assert failure.check(NoBackendAvailable)
    assert failure.value.retry_after == 3
    assert balancer.queued == 0


def test_a_cancelled_wait_leaves_the_queue():
    clock = Clock()
    balancer = limited(clock)
    first, _ = hold(balancer), hold(balancer)
    gone = balancer.acquire(FakeRequest())
    staying = balancer.acquire(FakeRequest())
    gone.cancel()
    assert outcome(gone).check(CancelledError)
    assert balancer.queued == 1
    first.release()
    assert outcome(staying).backend is first.backend
    assert clock.getDelayedCalls() == []


def test_without_limits_nothing_waits():
    balancer = make_balancer([server(1), server(2)], queue_size=0)
    leases = [hold(balancer) for _ in range(100)]
    assert Counter(lease.backend.server.host for lease in leases) == {
        "10.0.0.1": 50,
        "10.0.0.2": 50,
    }


def test_a_backend_at_its_limit_is_skipped():
    balancer = make_balancer([server(1, max_connections=2), server(2)])
    leases = [hold(balancer) for _ in range(6)]
    assert [lease.backend.in_flight for lease in leases[:1]] == [2]
    assert [backend.in_flight for backend in balancer.backends] == [2, 4]


# Draining


def test_a_drained_backend_gets_no_new_requests_and_in_flight_ones_finish():
    balancer = make_balancer([server(1), server(2)])
    in_flight = hold(balancer)
    assert in_flight.backend is balancer.backends[0]
    balancer.drain(0)
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.2"}
    in_flight.release()
    assert balancer.backends[0].in_flight == 0
    balancer.enable("http://10.0.0.1")
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.1", "10.0.0.2"}


def test_drain_from_the_configuration():
    balancer = make_balancer([server(1, drain=True), server(2)])
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.2"}
    assert balancer.state()["backends"][0]["draining"] is True


def test_every_backend_drained_answers_no_backend_available_at_once():
    balancer = make_balancer([server(1), server(2)])
    balancer.drain(0)
    balancer.drain("http://10.0.0.2")
    assert outcome(balancer.acquire(FakeRequest())).check(NoBackendAvailable)
    assert balancer.queued == 0


def test_drain_an_unknown_backend():
    balancer = make_balancer([server(1)])
    with pytest.raises(KeyError):
        balancer.drain(1)
    with pytest.raises(KeyError):
        balancer.enable("http://10.0.0.9")


# Health


def test_an_unhealthy_backend_is_left_out_until_it_is_healthy_again():
    balancer = make_balancer([server(1), server(2)])
    balancer.set_healthy(balancer.backends[0], False)
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.2"}
    balancer.set_healthy(balancer.backends[0], True)
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.1", "10.0.0.2"}


def test_with_no_healthy_backend_every_backend_is_tried():
    balancer = make_balancer([server(1), server(2), server(3)])
    balancer.drain(2)
    for backend in balancer.backends:
        balancer.set_healthy(backend, False)
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.1", "10.0.0.2"}


# Outlier detection


def outlying(clock, count=3, **options):
    return make_balancer(
        [server(n) for n in range(1, count + 1)],
        clock=clock,
        outlier=OutlierDetection(**options),
    )


def fail_on(balancer, backend, times, failure=CONNECT_FAILED, status=0):
    """
    Release C{times} leases on C{backend} with C{failure}.
    """
    for _ in range(times):
        lease = hold(balancer)
        while lease.backend is not backend:
            lease.release()
            lease = hold(balancer)
        lease.release(failure, status)


def test_consecutive_failures_eject_a_backend_for_ejection_time():
    clock = Clock()
    balancer = outlying(clock, consecutive_failures=3, ejection_time=10.0)
    bad = balancer.backends[0]
    fail_on(balancer, bad, 2)
    assert not bad.ejected_until
    fail_on(balancer, bad, 1, BROKEN)
    assert bad.ejected_until == 10.0
    assert bad not in {pick(balancer) for _ in range(6)}
    clock.advance(10)
    assert bad in {pick(balancer) for _ in range(6)}
    assert balancer.state()["backends"][0]["ejections"] == 1


def test_a_success_starts_the_count_again():
    balancer = outlying(Clock(), consecutive_failures=3)
    bad = balancer.backends[0]
    fail_on(balancer, bad, 2, TIMEOUT)
    fail_on(balancer, bad, 1, SUCCESS, 200)
    fail_on(balancer, bad, 2, TIMEOUT)
    assert not bad.ejected_until
    assert bad.failures == 2


def test_5xx_responses_count_as_failures_when_configured():
    counting = outlying(Clock(), consecutive_failures=2)
    fail_on(counting, counting.backends[0], 2, SUCCESS, 503)
    assert counting.backends[0].ejected_until
    ignoring = outlying(Clock(), consecutive_failures=2, count_5xx=False)
    fail_on(ignoring, ignoring.backends[0], 2, SUCCESS, 503)
    assert not ignoring.backends[0].ejected_until


def test_an_abandoned_exchange_says_nothing_about_the_backend():
    balancer = outlying(Clock(), consecutive_failures=1)
    fail_on(balancer, balancer.backends[0], 3, ABANDONED)
    assert not balancer.backends[0].ejected_until
    assert balancer.backends[0].failures == 0


def test_repeated_ejections_double_up_to_max_ejection_time():
    clock = Clock()
    balancer = outlying(
        clock, consecutive_failures=1, ejection_time=10.0, max_ejection_time=25.0
    )
    bad = balancer.backends[0]
    lengths = []
    for _ in range(4):
        fail_on(balancer, bad, 1)
        lengths.append(bad.ejected_until - clock.seconds())
        clock.advance(lengths[-1])
        clock.advance(1)
    assert lengths == [10.0, 20.0, 25.0, 25.0]
    # A backend that stays in for longer than its last ejection starts over.
    clock.advance(30)
    fail_on(balancer, bad, 1)
    assert bad.ejected_until - clock.seconds() == 10.0


def test_no_more_than_max_ejection_percent_of_backends_are_ejected():
    balancer = outlying(Clock(), count=4, consecutive_failures=1, max_ejection_percent=50)
    for backend in balancer.backends:
        fail_on(balancer, backend, 1)
    ejected = [backend for backend in balancer.backends if backend.ejected_until]
    assert len(ejected) == 2


def test_closing_cancels_ejection_timers_and_answers_waiting_requests():
    clock = Clock()
    balancer = make_balancer(
        [server(1, max_connections=1), server(2)],
        clock=clock,
        outlier=OutlierDetection(consecutive_failures=1),
    )
    fail_on(balancer, balancer.backends[1], 1)
    hold(balancer)
    waiting = balancer.acquire(FakeRequest())
    balancer.close()
    assert outcome(waiting).check(NoBackendAvailable)
    assert clock.getDelayedCalls() == []


# Sticky sessions


def test_sticky_sessions_by_cookie():
    balancer = make_balancer(
        [server(1), server(2), server(3)], sticky=Sticky("backend", 3600.0)
    )
    lease = hold(balancer)
    cookie = lease.set_cookie
    assert cookie.startswith(b"backend=")
    assert cookie.endswith(b"; Path=/; HttpOnly; Max-Age=3600")
    value = cookie.split(b";")[0]
    returning = FakeRequest(headers={b"Cookie": b"a=b; " + value})
    for _ in range(5):
        again = hold(balancer, returning)
        assert again.backend is lease.backend
        assert again.set_cookie is None


def test_a_sticky_cookie_for_a_backend_that_is_out_is_replaced():
    balancer = make_balancer([server(1), server(2)], sticky=Sticky("backend"))
    first = hold(balancer)
    assert first.set_cookie.endswith(b"; Path=/; HttpOnly")
    balancer.drain(0)
    request = FakeRequest(headers={b"Cookie": first.set_cookie.split(b";")[0]})
    moved = hold(balancer, request)
    assert moved.backend is balancer.backends[1]
    assert moved.set_cookie is not None


# Retry budget and state


def test_retry_budget():
    balancer = make_balancer([server(1), server(2)], retry_budget=20)
    retries = [
        outcome(balancer.acquire(FakeRequest(), [balancer.backends[0]]))
        for _ in range(MIN_RETRIES)
    ]
    assert not balancer.may_retry()
    others = [hold(balancer) for _ in range(17)]
    # 20 in flight, 20% of which is 4: one more retry is allowed.
    assert balancer.may_retry()
    for lease in others[:5]:
        lease.release()
    assert not balancer.may_retry()
    for lease in retries:
        lease.release()
    assert balancer.may_retry()


def test_a_retry_avoids_the_backends_tried_and_never_waits():
    balancer = make_balancer([server(1), server(2, max_connections=1)])
    busy = hold(balancer)
    assert busy.backend is balancer.backends[0]
    retry = outcome(balancer.acquire(FakeRequest(), [balancer.backends[0]]))
    assert retry.backend is balancer.backends[1]
    failure = outcome(balancer.acquire(FakeRequest(), [balancer.backends[0]]))
    assert failure.check(NoBackendAvailable)
    assert balancer.queued == 0


def test_state_is_plain_data():
    clock = Clock()
    balancer = make_balancer([server(1, weight=2, max_connections=5), server(2)], clock=clock)
    lease = hold(balancer)
    clock.advance(0.5)
    lease.release()
    balancer.backends[1].last_check = "HTTP 200"
    hold(balancer)
    assert balancer.state() == {
        "upstream": "app",
        "policy": "round_robin",
        "in_flight": 1,
        "queued": 0,
        "backends": [
            {
                "url": "http://10.0.0.1",
                "weight": 2,
                "current_weight": 2,
                "max_connections": 5,
                "in_flight": 0,
                "healthy": True,
                "draining": False,
                "backup": False,
                "ejected": False,
                "ejected_seconds_left": 0.0,
                "ejections": 0,
                "consecutive_failures": 0,
                "last_check": None,
                "latency": pytest.approx(0.1),
            },
            {
                "url": "http://10.0.0.2",
                "weight": 1,
                "current_weight": 1,
                "max_connections": 0,
                "in_flight": 1,
                "healthy": True,
                "draining": False,
                "backup": False,
                "ejected": False,
                "ejected_seconds_left": 0.0,
                "ejections": 0,
                "consecutive_failures": 0,
                "last_check": "HTTP 200",
                "latency": 0.0,
            },
        ],
        "leaving": [],
        "lookups": [],
    }
