"""
The error log over real sockets: a 502 of a backend that refuses
connections is one line with its request ID, route, upstream, backend and
cause.
"""

from __future__ import annotations

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from ..support.processes import free_port, temporary_directory


class ErrorLogTests(TestCase):
    @inlineCallbacks
    def test_a_refused_backend_gives_one_error_line_with_its_cause(self):
        dead = free_port()
        config = temporary_directory(self) / "proxy.toml"
        config.write_text(
            '[listeners.web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:%d" }]\n'
            "retries = 0\n"
            '[[routes]]\nname = "shop"\nupstream = "app"\n'
            '[log]\naccess = "off"\n' % (dead,)
        )
        service = ProxyService(load_config(str(config)), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        port = service.ports[0].getHost().port
        response = yield treq.get(
            "http://127.0.0.1:%d/p?q=1" % (port,),
            persistent=False,
        )
        yield treq.content(response)
        self.assertEqual(response.code, 502)
        [request_id] = response.headers.getRawHeaders("x-request-id")
        [event] = [e for e in events if e.get("log_namespace") == "txrevproxy.errors"]
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(
            [event[k] for k in ("status", "cause", "request_id", "route", "upstream", "backend")],
            [502, "refused", request_id, "shop", "app", "127.0.0.1:%d" % (dead,)],
        )
