"""
Tests for the state machine of L{txrevproxy.forward.exchange.ProxyExchange}
(and of the L{CachingExchange} that follows it), and for the internal
protocols the exchanges and the cache's own request declare; in memory,
clients and backends on L{StringTransport}s.
"""

from __future__ import annotations

from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from txrevproxy.cache.exchange import BackgroundRequest, CachingExchange
from txrevproxy.cache.fetch import Waiter
from txrevproxy.cache.resource import CachingProxyResource
from txrevproxy.cache.shared import SharedCache
from txrevproxy.cache.store import MemoryStore
from txrevproxy.config.model import CacheSettings, ServerSettings
from txrevproxy.forward.exchange import (
    CONNECTING,
    DONE,
    RECEIVING,
    RESPONDING,
    SENDING,
    TUNNELLING,
    WAITING,
    ProxyExchange,
)
from txrevproxy.interfaces import IProxiedRequest, IRequestHandler, IUpstreamExchange
from txrevproxy.server.request import DISCARD
from txrevproxy.server.site import ProxySite

from ..support.balancing import server
from ..support.proxies import GET, OK, Proxy, status


def exchange_of(channel):
    """
    The exchange of the channel's latest request, while it is its handler.
    """
    exchange = channel.requests[-1].handler
    assert isinstance(exchange, ProxyExchange)
    return exchange


def released(proxy) -> bool:
    """
    Whether every lease of the proxy's balancer was given back.
    """
    return proxy.balancer.in_flight == 0


# The declared protocols ------------------------------------------------------


class OriginalRequest:
    """
    What a L{BackgroundRequest} copies of the client request behind it.
    """

    method = b"GET"
    uri = path = b"/page"
    clientproto = b"HTTP/1.1"
    connection = None
    site = None

    def __init__(self) -> None:
        self.requestHeaders = Headers({b"host": [b"h"]})


def test_proxy_exchange_provides_its_protocols():
    proxy = Proxy()
    channel, _ = proxy.client(GET)
    exchange = exchange_of(channel)
    verifyObject(IRequestHandler, exchange)
    verifyObject(IUpstreamExchange, exchange)
    verifyObject(IPushProducer, exchange)


def test_caching_exchange_provides_its_protocols():
    proxy = Proxy()
    exchange = CachingExchange(
        BackgroundRequest(OriginalRequest()), proxy.site.resource.target, None, b"key"
    )
    verifyObject(IRequestHandler, exchange)
    verifyObject(IUpstreamExchange, exchange)
    verifyObject(IPushProducer, exchange)


def test_background_request_provides_iproxiedrequest():
    request = BackgroundRequest(OriginalRequest())
    verifyObject(IProxiedRequest, request)
    assert request.handler is DISCARD


def test_waiter_provides_ipushproducer():
    verifyObject(IPushProducer, Waiter(DummyRequest([b""]), []))


# The transitions ---------------------------------------------------------------


def test_an_exchange_goes_through_sending_receiving_responding_to_done():
    proxy = Proxy()
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    request = channel.requests[-1]
    assert exchange._state is SENDING
    backend = proxy.connection(0)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\n")
    assert exchange._state is RECEIVING
    backend.dataReceived(b"Content-Length: 2\r\n\r\n")
    assert exchange._state is RESPONDING
    assert not released(proxy)
    backend.dataReceived(b"ok")
    assert exchange._state is DONE
    assert released(proxy)
    assert status(client) == b"HTTP/1.1 200 OK"
    # The request <-> exchange cycle is broken.
    assert "handler" not in request.__dict__


def test_a_status_code_outside_the_usual_classes_keeps_its_digits():
    proxy = Proxy()
    channel, client = proxy.client(GET)
    proxy.connection(0).dataReceived(b"HTTP/1.1 799 Odd\r\nContent-Length: 0\r\n\r\n")
    assert status(client) == b"HTTP/1.1 799 Odd"


def test_waiting_for_a_backend_then_connecting():
    proxy = Proxy(servers=[server(1, max_connections=1)])
    channel_1, first = proxy.client(GET)
    proxy.endpoints[0].hang = True
    channel_2, _ = proxy.client(GET)
    waiting = exchange_of(channel_2)
    assert waiting._state is WAITING
    proxy.connection(0).dataReceived(OK)
    assert status(first) == b"HTTP/1.1 200 OK"
    # The first response gave the connection back to the pool, and its
    # lease to the waiting request, which reuses it at once.
    assert waiting._state is SENDING
    assert len(proxy.endpoints[0].connections) == 1


def test_a_client_gone_while_waiting_cancels_the_wait_and_releases_nothing():
    proxy = Proxy(servers=[server(1, max_connections=1)])
    proxy.client(GET)
    channel, _ = proxy.client(GET)
    exchange = exchange_of(channel)
    assert exchange._state is WAITING
    assert proxy.balancer.queued == 1
    channel.connectionLost(Failure(ConnectionDone()))
    assert exchange._state is DONE
    assert exchange._waiting is None
    assert proxy.balancer.queued == 0
    # The first request's lease is still the only one held.
    assert proxy.balancer.in_flight == 1
    proxy.connection(0).dataReceived(OK)
    assert released(proxy)
    assert len(proxy.endpoints[0].connections) == 1


def test_a_client_gone_while_connecting_gives_the_late_connection_to_the_pool():
    proxy = Proxy(count=1)
    proxy.endpoints[0].hang = True
    channel, _ = proxy.client(GET)
    exchange = exchange_of(channel)
    assert exchange._state is CONNECTING
    channel.connectionLost(Failure(ConnectionDone()))
    assert exchange._state is DONE
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 0
    pool = proxy.balancer.backends[0].pool
    protocol = pool._factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    proxy.endpoints[0].pending[0].callback(protocol)
    assert exchange._state is DONE
    assert protocol.transport.value() == b""
    assert pool.idle_count == 1


def test_a_connection_that_fails_after_the_end_is_ignored():
    proxy = Proxy(count=2)
    proxy.endpoints[0].hang = True
    channel, _ = proxy.client(GET)
    exchange = exchange_of(channel)
    channel.connectionLost(Failure(ConnectionDone()))
    proxy.endpoints[0].pending[0].errback(Failure(ConnectionRefusedError()))
    assert exchange._state is DONE
    assert proxy.endpoints[1].attempts == 0
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 0


def test_a_response_after_done_is_ignored():
    proxy = Proxy()
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    backend = proxy.connection(0)
    channel.connectionLost(Failure(ConnectionDone()))
    assert exchange._state is DONE
    assert backend.transport.disconnecting
    assert released(proxy)
    client.clear()
    backend.dataReceived(OK)
    exchange.upstreamFailed(Failure(ConnectionLost()))
    exchange.clientGone()
    assert client.value() == b""
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 0


def test_a_refused_connection_goes_back_to_waiting_for_another_backend():
    proxy = Proxy(count=2)
    proxy.endpoints[0].refuse = True
    states = []
    acquire = proxy.balancer.acquire

    def recording_acquire(request, tried=None):
        exchange = request.handler
        states.append((exchange._state, exchange._lease, list(tried or ())))
        return acquire(request, tried)

    proxy.balancer.acquire = recording_acquire
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    first = proxy.balancer.backends[0]
    assert states == [(WAITING, None, [first])]
    assert exchange._state is SENDING
    assert exchange._lease.backend is proxy.balancer.backends[1]
    proxy.connection(1).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    assert released(proxy)


def test_a_stale_reused_connection_goes_back_to_connecting_on_the_same_lease():
    proxy = Proxy(count=1)
    channel, _ = proxy.client(GET)
    proxy.connection(0).dataReceived(OK)
    channel.dataReceived(GET)
    exchange = exchange_of(channel)
    lease = exchange._lease
    proxy.endpoints[0].hang = True
    proxy.connection(0).connectionLost(Failure(ConnectionDone()))
    assert exchange._state is CONNECTING
    assert exchange._lease is lease
    assert len(proxy.endpoints[0].pending) == 1


def test_a_backend_that_breaks_mid_response_aborts_the_client_once():
    proxy = Proxy()
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    backend = proxy.connection(0)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    backend.connectionLost(Failure(ConnectionLost()))
    assert exchange._state is DONE
    assert client.disconnecting
    assert proxy.balancer.backends[0].failures == 1
    exchange.clientGone()
    assert proxy.balancer.backends[0].failures == 1
    assert released(proxy)


def test_the_response_timer_is_not_started_again_once_the_backend_answers():
    """
    An upload that ends after the backend began to answer does not start
    the response timer again: it counts to the first response byte, and
    must not cut the response short later.
    """
    proxy = Proxy(count=1)
    proxy.site.resource.target.response_timeout = 5.0
    channel, client = proxy.client(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"
    )
    backend = proxy.connection(0)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\n")
    channel.dataReceived(b"cd")
    backend.dataReceived(b"Content-Length: 4\r\n\r\nxy")
    proxy.clock.advance(6)
    assert not client.disconnecting
    backend.dataReceived(b"zw")
    assert status(client) == b"HTTP/1.1 200 OK"
    assert client.value().endswith(b"\r\n\r\nxyzw")


def test_a_response_timeout_is_a_504():
    proxy = Proxy(count=1)
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    proxy.clock.advance(60)
    assert exchange._state is DONE
    assert status(client) == b"HTTP/1.1 504 Gateway Timeout"
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 1


def test_an_upgrade_tunnels_until_either_side_closes():
    proxy = Proxy(count=1)
    channel, client = proxy.client(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )
    exchange = exchange_of(channel)
    backend = proxy.connection(0)
    backend.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\nhello"
    )
    assert exchange._state is TUNNELLING
    assert client.value().endswith(b"\r\n\r\nhello")
    backend.connectionLost(Failure(ConnectionDone()))
    assert exchange._state is DONE
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 0


# The caching exchange --------------------------------------------------------


class CachingProxy(Proxy):
    """
    A L{Proxy} whose route has a cache in memory.
    """

    def __init__(self, **options) -> None:
        super().__init__(**options)
        target = self.site.resource.target
        self.cache = SharedCache(CacheSettings("pages"), MemoryStore(100000), self.clock)
        self.site = ProxySite(
            CachingProxyResource(target, self.cache),
            reactor=self.clock,
            settings=ServerSettings(),
        )


STORABLE = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\nok"


def test_a_cached_miss_goes_through_the_states_and_is_stored():
    proxy = CachingProxy(count=1)
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    assert isinstance(exchange, CachingExchange)
    assert exchange._state is SENDING
    proxy.connection(0).dataReceived(STORABLE)
    assert exchange._state is DONE
    assert exchange.fetch is None
    assert released(proxy)
    assert status(client) == b"HTTP/1.1 200 OK"
    _, second = proxy.client(GET)
    assert b"Cache-Status: txrevproxy; hit" in second.value()
    assert len(proxy.endpoints[0].connections) == 1


def test_a_leader_gone_mid_response_is_diverted_for_its_waiters():
    proxy = CachingProxy(count=1)
    leader, _ = proxy.client(GET)
    exchange = exchange_of(leader)
    _, waiter = proxy.client(GET)
    backend = proxy.connection(0)
    backend.dataReceived(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\nab"
    )
    leader.connectionLost(Failure(ConnectionDone()))
    assert exchange._state is RESPONDING
    assert exchange._diverted
    assert not backend.transport.disconnecting
    backend.dataReceived(b"cd")
    assert exchange._state is DONE
    assert released(proxy)
    assert waiter.value().endswith(b"\r\n\r\nabcd")


def test_a_cached_request_that_fails_is_answered_with_the_error():
    proxy = CachingProxy(count=1, retries=0)
    proxy.endpoints[0].refuse = True
    channel, client = proxy.client(GET)
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    assert released(proxy)
    assert not proxy.cache.fetches


def stored_then_stale(proxy):
    """
    Store a response that may stand in for an error for a minute once
    stale, and let it go stale.
    """
    _, client = proxy.client(GET)
    proxy.connection(0).dataReceived(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1, stale-if-error=60\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    assert status(client) == b"HTTP/1.1 200 OK"
    proxy.clock.advance(2)
    # The next request makes a new connection.
    proxy.connection(0).connectionLost(Failure(ConnectionDone()))


def test_a_refused_revalidation_is_answered_from_the_stale_response():
    proxy = CachingProxy(count=1, retries=0)
    stored_then_stale(proxy)
    proxy.endpoints[0].refuse = True
    channel, client = proxy.client(GET)
    answer = client.value()
    assert status(client) == b"HTTP/1.1 200 OK"
    assert b"detail=stale-if-error" in answer
    assert answer.endswith(b"\r\n\r\nok")
    assert released(proxy)
    assert not proxy.cache.fetches


def test_a_revalidation_that_times_out_is_answered_from_the_stale_response():
    proxy = CachingProxy(count=1)
    proxy.site.resource.target.response_timeout = 5.0
    stored_then_stale(proxy)
    channel, client = proxy.client(GET)
    exchange = exchange_of(channel)
    proxy.clock.advance(5)
    assert exchange._state is DONE
    assert status(client) == b"HTTP/1.1 200 OK"
    assert b"detail=stale-if-error" in client.value()
    assert released(proxy)
    assert proxy.balancer.backends[0].failures == 1
