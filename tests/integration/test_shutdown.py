"""
Graceful shutdown of a L{ProxyService}: it stops accepting, closes idle
keep-alive connections at once, lets a request in flight finish, and
closes what is still busy after C{shutdown_timeout}.
"""

from __future__ import annotations

from typing import List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import ServerSettings

from ..support.loopback import connect_raw, listen, proxy_config
from ..support.waiting import until

REQUEST = b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n"


class Held(resource.Resource):
    """
    A backend that answers each request only when the test says so.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: List = []

    def render(self, request):
        self.held.append(request)
        return server.NOT_DONE_YET

    def answer(self) -> None:
        for request in self.held:
            request.write(b"done")
            request.finish()
        self.held = []



class ShutdownTests(TestCase):
    @inlineCallbacks
    def start(self, shutdown_timeout: float = 30.0):
        self.backend = Held()
        backend_port = yield listen(server.Site(self.backend), self)
        config = proxy_config(
            [backend_port], server=ServerSettings(shutdown_timeout=shutdown_timeout)
        )
        self.service = ProxyService(config, reactor)
        self.service.startService()
        self.port = self.service.ports[0].getHost().port

    @inlineCallbacks
    def test_in_flight_request_finishes_and_idle_connection_closes(self):
        yield self.start()
        idle = yield connect_raw(self.port)
        busy = yield connect_raw(self.port, REQUEST)
        yield until(lambda: self.backend.held, timeout=10.0)

        stopped = self.service.stopService()
        yield idle.closed
        with self.assertRaises(ConnectError):
            yield connect_raw(self.port)
        self.assertFalse(stopped.called)

        self.backend.answer()
        received = yield busy.closed
        yield stopped
        self.assertTrue(received.startswith(b"HTTP/1.1 200 OK\r\n"), received)
        self.assertIn(b"Connection: close\r\n", received)
        self.assertTrue(received.endswith(b"4\r\ndone\r\n0\r\n\r\n"), received)

    @inlineCallbacks
    def test_busy_connection_is_closed_after_the_timeout(self):
        yield self.start(shutdown_timeout=0.1)
        busy = yield connect_raw(self.port, REQUEST)
        yield until(lambda: self.backend.held, timeout=10.0)
        yield self.service.stopService()
        received = yield busy.closed
        self.assertEqual(received, b"")
        self.flushLoggedErrors()
