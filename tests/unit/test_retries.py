"""
Tests for what the hot path (L{txrevproxy.forward.exchange}) does with the
balancer: retries on another backend and their rules, the outcome each
exchange reports, the 503 of a request that waited too long for a backend,
a client leaving the queue, and the sticky cookie; all in memory, clients
and backends on L{StringTransport}s.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from txrevproxy.config.model import OutlierDetection, Sticky

from ..support.balancing import server
from ..support.proxies import GET, OK, Proxy, status


def test_get_is_retried_on_another_backend_when_the_connection_is_refused():
    proxy = Proxy(count=2)
    proxy.endpoints[0].refuse = True
    _, client = proxy.client(GET)
    assert proxy.endpoints[0].attempts == 1
    proxy.connection(1).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    assert proxy.balancer.backends[0].failures == 1
    assert proxy.balancer.backends[1].failures == 0


def test_a_request_with_a_body_is_retried_when_none_of_it_was_sent():
    """
    The body received while the first backend was being connected to is
    held, so all of it goes to the backend that is tried next.
    """
    proxy = Proxy(count=2)
    proxy.endpoints[0].hang = True
    channel, client = proxy.client(
        b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello"
    )
    channel.dataReceived(b"world")
    proxy.endpoints[0].pending[0].errback(Failure(ConnectionLost()))
    sent = proxy.connection(1).transport.value()
    assert sent.startswith(b"POST /form HTTP/1.1\r\n")
    assert sent.endswith(b"\r\n\r\nhelloworld")
    proxy.connection(1).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"


def test_an_idempotent_request_is_retried_when_the_backend_resets_before_answering():
    proxy = Proxy(count=2)
    _, client = proxy.client(b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n")
    proxy.connection(0).connectionLost(Failure(ConnectionLost()))
    assert proxy.connection(1).transport.value().startswith(b"DELETE /x HTTP/1.1\r\n")
    proxy.connection(1).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "request_, answered",
    [
        # Part of the body was sent, and it was not kept.
        (b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello", b""),
        # A POST that was sent may have been acted on.
        (b"POST /x HTTP/1.1\r\nHost: h\r\n\r\n", b""),
        # The backend began to answer.
        (GET, b"HTTP/1.1 200 OK\r\n"),
    ],
)
def test_not_retried_when_the_backend_breaks_the_connection(request_, answered):
    proxy = Proxy()
    _, client = proxy.client(request_)
    proxy.connection(0).dataReceived(answered)
    proxy.connection(0).connectionLost(Failure(ConnectionLost()))
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    assert proxy.endpoints[1].attempts == 0
    assert proxy.endpoints[2].attempts == 0


def test_no_retry_once_the_response_reached_the_client():
    proxy = Proxy()
    _, client = proxy.client(GET)
    proxy.connection(0).dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    proxy.connection(0).connectionLost(Failure(ConnectionLost()))
    assert status(client) == b"HTTP/1.1 200 OK"
    assert client.disconnecting
    assert proxy.endpoints[1].attempts == 0
    assert proxy.balancer.backends[0].failures == 1


def test_retries_are_bounded_by_retries():
    proxy = Proxy(count=4, retries=2)
    for endpoint in proxy.endpoints:
        endpoint.refuse = True
    _, client = proxy.client(GET)
    assert [endpoint.attempts for endpoint in proxy.endpoints] == [1, 1, 1, 0]
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    assert proxy.balancer.in_flight == 0


def test_no_retries_when_retries_is_zero():
    proxy = Proxy(retries=0)
    proxy.endpoints[0].refuse = True
    _, client = proxy.client(GET)
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    assert proxy.endpoints[1].attempts == 0


def test_no_retries_beyond_the_budget():
    proxy = Proxy(count=2)
    proxy.balancer._retrying = 3
    proxy.endpoints[0].refuse = True
    _, client = proxy.client(GET)
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    assert proxy.endpoints[1].attempts == 0


def test_a_stale_pooled_connection_is_replaced_on_the_same_backend_first():
    """
    A reused keep-alive connection that breaks before answering was most
    likely closed by the backend as it idled: the request goes again on a
    new connection to the same backend, which is not counted as a failure.
    """
    proxy = Proxy(count=1)
    channel, client = proxy.client(GET)
    proxy.connection(0).dataReceived(OK)
    client.clear()
    channel.dataReceived(GET)
    first = proxy.connection(0)
    first.connectionLost(Failure(ConnectionDone()))
    assert proxy.connection(0) is not first
    proxy.connection(0).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    assert proxy.balancer.backends[0].failures == 0


def test_a_5xx_response_is_reported_to_outlier_detection():
    proxy = Proxy(count=2, outlier=OutlierDetection(consecutive_failures=1))
    _, client = proxy.client(GET)
    proxy.connection(0).dataReceived(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    )
    assert status(client) == b"HTTP/1.1 503 Service Unavailable"
    assert proxy.balancer.backends[0].ejected_until


def test_a_request_that_waits_too_long_for_a_backend_gets_503_with_retry_after():
    proxy = Proxy(count=1, servers=[server(1, max_connections=1)], queue_timeout=5.0)
    proxy.client(GET)
    _, waiting = proxy.client(GET)
    assert waiting.value() == b""
    proxy.clock.advance(5)
    answer = waiting.value()
    assert status(waiting) == b"HTTP/1.1 503 Service Unavailable"
    assert b"\r\nRetry-After: 5\r\n" in answer
    assert len(proxy.endpoints[0].connections) == 1


def test_a_waiting_request_goes_when_a_backend_is_free():
    proxy = Proxy(count=1, servers=[server(1, max_connections=1)])
    _, first = proxy.client(GET)
    _, second = proxy.client(GET)
    proxy.connection(0).dataReceived(OK)
    assert status(first) == b"HTTP/1.1 200 OK"
    proxy.connection(0).dataReceived(OK)
    assert status(second) == b"HTTP/1.1 200 OK"
    assert len(proxy.endpoints[0].connections) == 1


def test_a_client_that_goes_away_while_waiting_leaves_the_queue():
    proxy = Proxy(count=1, servers=[server(1, max_connections=1)])
    proxy.client(GET)
    channel, _ = proxy.client(GET)
    assert proxy.balancer.queued == 1
    channel.connectionLost(Failure(ConnectionDone()))
    assert proxy.balancer.queued == 0
    timers = [call.func.__name__ for call in proxy.clock.getDelayedCalls()]
    assert "_timedOut" not in timers


def test_the_sticky_cookie_is_set_on_the_response():
    proxy = Proxy(count=2, sticky=Sticky("backend"))
    _, client = proxy.client(GET)
    proxy.connection(0).dataReceived(OK)
    assert b"\r\nSet-Cookie: backend=" in client.value()
