"""
The whole hot path in memory (client and backend on L{StringTransport}s),
checking that an exchange leaves nothing for the cyclic garbage collector:
on CPython, cyclic garbage made per request means frequent collections,
and the full ones show up as latency spikes.
"""

from __future__ import annotations

import gc
import platform
import weakref
from unittest import skipIf

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import BackendServer, ServerSettings, Upstream
from txrevproxy.forward.resource import ProxyTarget, ReverseProxyResource
from txrevproxy.server.site import ProxySite
from txrevproxy.upstream.balancer import Backend, Balancer
from txrevproxy.upstream.policies import RoundRobin
from txrevproxy.upstream.pool import ConnectionPool

from ..support.endpoints import FakeEndpoint


class InMemoryProxy:
    """
    A proxy site in front of one backend whose connections are
    L{StringTransport}s.
    """

    def __init__(self) -> None:
        self.clock = MemoryReactorClock()
        self.endpoint = FakeEndpoint()
        server = BackendServer("http://backend:80", "http", "backend", 80)
        pool = ConnectionPool(self.clock, self.endpoint, server.url, 30.0, 4)
        backends = [Backend(server, pool, self.clock)]
        upstream = Upstream("app", (server,))
        balancer = Balancer(upstream, backends, RoundRobin(upstream, backends, self.clock, None), self.clock)
        target = ProxyTarget(balancer, self.clock, 60.0, True)
        self.site = ProxySite(
            ReverseProxyResource(target), reactor=self.clock, settings=ServerSettings()
        )
        self.channel = self.site.buildProtocol(None)
        self.client = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1))
        self.channel.makeConnection(self.client)

    def request(self, raw_request: bytes, raw_response: bytes) -> bytes:
        """
        Send a request, answer it from the backend, return the client's
        bytes.
        """
        self.client.clear()
        self.channel.dataReceived(raw_request)
        backend = self.endpoint.connections[-1]
        backend.transport.clear()
        backend.dataReceived(raw_response)
        return self.client.value()


class ExchangeMemoryTests(TestCase):
    def setUp(self):
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)

    def test_full_path_in_memory(self):
        proxy = InMemoryProxy()
        answer = proxy.request(
            b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(answer.endswith(b"\r\n\r\nok"))
        self.assertEqual(len(proxy.endpoint.connections), 1)

    @skipIf(
        platform.python_implementation() != "CPython",
        "only CPython frees objects by reference counting",
    )
    def test_finished_exchange_is_freed_without_the_cycle_collector(self):
        proxy = InMemoryProxy()
        proxy.request(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        seen = []
        original = ReverseProxyResource.render

        def render(resource, request):
            seen.append(weakref.ref(request))
            return original(resource, request)

        self.patch(ReverseProxyResource, "render", render)
        proxy.request(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        self.assertEqual(len(seen), 1)
        self.assertIsNone(seen[0](), "the request (and its exchange) is in a cycle")
