"""
The base of the cache's integration tests: a proxy with a cache in front
of a scripted origin, and requests to it.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Callable

import attr
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import CacheSettings, Route

from .loopback import CountingSite, proxy_config, raw_exchange
from .origins import Scripted, parse_response


def get(port: int, path: bytes = b"/page", extra: bytes = b"", method: bytes = b"GET") -> Deferred:
    request = (
        method + b" " + path + b" HTTP/1.1\r\nHost: shop.test\r\n" + extra
        + b"Connection: close\r\n\r\n"
    )
    return raw_exchange(port, request).addCallback(parse_response)


class CacheTestCase(TestCase):
    timeout = 15

    #: Extra options of the cache table (a disk store in subclasses).
    store_options: dict = {}

    @inlineCallbacks
    def startWith(self, answer: Callable, **cache_options):
        cache_options = dict(self.store_options, **cache_options)
        if cache_options.get("store") == "disk":
            cache_options["path"] = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, cache_options["path"])
        self.backend = Scripted(answer)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.backend_listener = yield endpoint.listen(CountingSite(self.backend))
        self.addCleanup(self._stopBackend)
        backend_port = self.backend_listener.getHost().port
        config = proxy_config([backend_port])
        config = attr.evolve(
            config,
            caches={"pages": CacheSettings("pages", **cache_options)},
            routes=(Route(0, "app", "/", cache="pages"),),
        )
        self.service = ProxyService(config, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.cache = self.service.runtime.caches["pages"]
        self.port = self.service.ports[0].getHost().port

    def _stopBackend(self):
        if self.backend_listener.connected:
            return self.backend_listener.stopListening()

    @inlineCallbacks
    def backend_listening_stops(self):
        """
        Make the backend dead: it stops listening, and the proxy's idle
        connections to it are dropped.
        """
        yield self.backend_listener.stopListening()
        for backend in self.service.runtime.balancers["app"].backends:
            while True:
                connection = backend.pool.take_idle()
                if connection is None:
                    break
                connection.abort()


def cacheable(body: bytes = b"hello", cache_control: bytes = b"max-age=60", **headers):
    def answer(request):
        request.setHeader(b"Cache-Control", cache_control)
        for name, value in headers.items():
            request.setHeader(name.replace("_", "-").encode(), value)
        return body

    return answer
