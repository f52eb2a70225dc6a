"""
The timeouts after the response head over real loopback sockets: a
backend that stalls in the middle of a chunked body, and a client that
stops reading a large body.  Nothing here asserts a duration: each wait
is bounded by the test's own timeout.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.load import load_config

from ..support.loopback import connect_raw, listen
from ..support.processes import temporary_directory
from ..support.waiting import until

GET = b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n"
#: More than the sockets' buffers can hold, so a client that does not read
#: pauses the response.
BIG = 32 * 1024 * 1024


class Scripted(Protocol):
    """
    A backend connection that answers the request with C{factory.answer}
    and then neither writes nor closes.
    """

    def dataReceived(self, data: bytes) -> None:
        if not self.factory.answered:
            self.factory.answered = True
            self.transport.write(self.factory.answer)

    def connectionLost(self, reason=None) -> None:
        self.factory.lost += 1


class ScriptedFactory(Factory):
    protocol = Scripted

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.answered = False
        self.lost = 0


class TimeoutTests(TestCase):
    @inlineCallbacks
    def start(self, backend_answer: bytes, upstream_keys: str, route_keys: str = ""):
        """
        A backend that sends C{backend_answer}, and a proxy in front of it
        with the given keys, configured from TOML as an operator would.
        """
        backend = ScriptedFactory(backend_answer)
        backend_port = yield listen(backend, self)
        self.directory = Path(temporary_directory(self))
        config = self.directory / "proxy.toml"
        config.write_text(
            '[listeners.web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:%d" }]\n%s\n'
            '[[routes]]\nupstream = "app"\n%s\n'
            '[log]\naccess = "access.log"\nformat = "json"\n'
            % (backend_port, upstream_keys, route_keys)
        )
        self.service = ProxyService(load_config(str(config)), reactor)
        self.service.startService()
        self.addCleanup(self.stop)
        return backend, self.service.ports[0].getHost().port

    def stop(self):
        if self.service.running:
            return self.service.stopService()

    @inlineCallbacks
    def access_log(self):
        yield self.stop()
        [line] = (self.directory / "access.log").read_text().splitlines()
        return json.loads(line)

    @inlineCallbacks
    def test_a_stalled_backend_cuts_the_client_off_without_a_final_chunk(self):
        backend, port = yield self.start(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            'read_timeout = "1s"',
        )
        client = yield connect_raw(port, GET)
        received = yield client.closed
        self.assertIn(b"5\r\nhello\r\n", received)
        self.assertFalse(received.endswith(b"0\r\n\r\n"))
        yield until(lambda: backend.lost == 1)
        entry = yield self.access_log()
        self.assertEqual(entry["timeout"], "read")

    @inlineCallbacks
    def test_a_route_read_timeout_wins_over_the_upstream(self):
        backend, port = yield self.start(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            'read_timeout = "1h"',
            'read_timeout = "1s"',
        )
        client = yield connect_raw(port, GET)
        received = yield client.closed
        self.assertTrue(received.endswith(b"\r\n\r\nhello"))
        yield until(lambda: backend.lost == 1)
        entry = yield self.access_log()
        self.assertEqual(entry["timeout"], "read")

    @inlineCallbacks
    def test_a_client_that_does_not_read_is_aborted_and_the_backend_closed(self):
        backend, port = yield self.start(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (BIG,) + b"x" * BIG,
            'send_timeout = "1s"\nread_timeout = "1h"',
        )
        client = yield connect_raw(port, GET)
        client.transport.pauseProducing()
        yield until(lambda: backend.lost == 1)
        balancer = self.service.runtime.balancers["app"]
        self.assertEqual(balancer.backends[0].pool.idle_count, 0)
        client.transport.resumeProducing()
        received = yield client.closed
        self.assertLess(len(received), BIG)
        entry = yield self.access_log()
        self.assertEqual(entry["timeout"], "send")
