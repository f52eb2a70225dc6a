"""
Balancing over real loopback sockets: one of three backends dies under a
stream of requests, and not one request fails; the backend comes back, and
its health checks return it to rotation.
"""

from __future__ import annotations

from typing import List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web import http, resource

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import HealthCheck

from ..support.loopback import CountingSite, proxy_config, raw_exchange

RISE = 2


class Named(resource.Resource):
    """
    A backend that answers with its name, and counts its health checks.
    """

    isLeaf = True

    def __init__(self, name: bytes) -> None:
        super().__init__()
        self.name = name
        self.checks = 0

    def render(self, request):
        if request.path == b"/healthz":
            self.checks += 1
        return self.name


class KillableSite(CountingSite):
    """
    A backend site whose connections can all be dropped at once, as when
    its process dies.
    """

    # Plain HTTP/1.1 channels (not the HTTP/2-negotiating wrapper), whose
    # transports can be reached.
    protocol = http.HTTPChannel

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channels: List = []

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        self.channels.append(channel)
        return channel

    def kill(self) -> None:
        for channel in self.channels:
            if channel.transport.connected:
                channel.transport.abortConnection()


def get(port: int) -> Deferred:
    """
    One GET through the proxy: a Deferred of (status line, body).
    """
    d = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    return d.addCallback(
        lambda raw: (raw.split(b"\r\n", 1)[0], raw.partition(b"\r\n\r\n")[2])
    )


class BackendFailureTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_a_backend_dies_under_load_with_no_failed_request_and_comes_back(self):
        sites = [KillableSite(Named(b"backend-%d" % (n,))) for n in range(3)]
        ports = []
        for site in sites:
            ports.append((yield self._listen(site)))
        numbers = [port.getHost().port for port in ports]
        config = proxy_config(
            numbers,
            retries=2,
            health=HealthCheck(path="/healthz", interval=0.1, timeout=1.0, rise=RISE, fall=1),
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        proxy = service.ports[0].getHost().port
        balancer = service.runtime.balancers["app"]
        dying = balancer.backends[1]
        changes = {True: Deferred(), False: Deferred()}
        set_healthy = balancer.set_healthy

        def watch(backend, healthy):
            set_healthy(backend, healthy)
            if backend is dying and not changes[healthy].called:
                changes[healthy].callback(None)

        balancer.set_healthy = watch

        answers = []
        killed = []

        @inlineCallbacks
        def stream(count: int):
            for _ in range(count):
                answers.append((yield get(proxy)))
                if len(answers) == 30 and not killed:
                    killed.append(True)
                    yield ports[1].stopListening()
                    sites[1].kill()

        yield gatherResults([stream(40) for _ in range(3)])
        statuses = {status for status, _ in answers}
        self.assertEqual(statuses, {b"HTTP/1.1 200 OK"})
        self.assertEqual(len(answers), 120)
        # The dead backend served part of the requests before it died.
        served = [body for _, body in answers]
        self.assertIn(b"backend-1", served[:30])

        yield changes[False]
        self.assertFalse(dying.healthy)
        revived = Named(b"backend-1")
        yield self._listen(KillableSite(revived), numbers[1])
        yield changes[True]
        self.assertEqual(revived.checks, RISE)
        self.assertEqual(dying.last_check, "passed: HTTP 200")
        answers = yield gatherResults([get(proxy) for _ in range(9)])
        self.assertIn(b"backend-1", {body for _, body in answers})

    @inlineCallbacks
    def _listen(self, site, number: int = 0):
        """
        Listen on 127.0.0.1:C{number} (a free port by default) until the end
        of the test.

        @return: the port.
        """
        endpoint = TCP4ServerEndpoint(reactor, number, interface="127.0.0.1")
        port = yield endpoint.listen(site)
        self.addCleanup(port.stopListening)
        return port
