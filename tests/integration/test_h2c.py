"""
Cleartext HTTP/2 (h2c) on a plain listener with C{h2c = true}, behind
another TLS terminator: HTTP/2 with prior knowledge and HTTP/1.1 on the
same port, and the upgrade from HTTP/1.1 with C{h2c_upgrade = true}, with
real clients (curl, h2load, the C{h2} package); and what a plain listener
answers to HTTP/2 it does not serve.
"""

from __future__ import annotations

import shutil

import attr
import h2.config
import h2.connection
import h2.events
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import Listener
from txrevproxy.server.http2 import PREFACE

from ..support.h2_client import connect_h2c
from ..support.loopback import (
    CountingSite,
    Echo,
    connect_raw,
    echoed_headers,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)
from ..support.waiting import until

UPGRADE = (
    b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
)


def run(command: str, *arguments: str):
    """
    Run a client command; fire with its output, errors and exit code.
    """
    return getProcessOutputAndValue(
        shutil.which(command), arguments, env={}, reactor=reactor
    )


class H2cCase(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        backend_port = yield listen(self.backend, self)
        config = proxy_config([backend_port])
        self.config = attr.evolve(
            config,
            listeners={"web": Listener("web", "tcp:0:interface=127.0.0.1", h2c=True)},
        )

    def start(self, h2c: bool = True, upgrade: bool = False, **options) -> str:
        listener = Listener(
            "web", "tcp:0:interface=127.0.0.1", h2c=h2c, h2c_upgrade=upgrade, **options
        )
        config = attr.evolve(self.config, listeners={"web": listener})
        self.port = start_proxy(config, self)
        return "http://127.0.0.1:%d" % (self.port,)

    @inlineCallbacks
    def test_curl_with_prior_knowledge_gets_http2(self):
        url = self.start()
        out, err, code = yield run(
            "curl", "-sS", "-i", "--http2-prior-knowledge", url + "/pk?x=1"
        )
        self.assertEqual(code, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/2 200"), head)
        self.assertTrue(body.startswith(b"GET /pk?x=1"), body)
        self.assertEqual(echoed_headers(body)[b"via"], [b"2 txrevproxy"])

    @inlineCallbacks
    def test_h2load_many_streams_on_two_connections(self):
        url = self.start()
        out, err, code = yield run("h2load", "-n", "200", "-c", "2", "-m", "10", url + "/")
        self.assertEqual(code, 0, err)
        self.assertIn(b"Application protocol: h2c", out)
        self.assertIn(b"200 total, 200 started, 200 done, 200 succeeded, 0 failed", out)
        self.assertIn(b"status codes: 200 2xx", out)

    @inlineCallbacks
    def test_http11_on_the_same_port(self):
        for upgrade in (False, True):
            self.start(upgrade=upgrade)
            answer = yield raw_exchange(
                self.port,
                b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
                b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            )
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
            self.assertIn(b"GET /one 0\n", answer)
            self.assertIn(b"GET /two 0\n", answer)
            self.assertIn(b"via: 1.1 txrevproxy", answer)

    @inlineCallbacks
    def test_streams_in_parallel_with_the_h2_package(self):
        self.start()
        client = yield connect_h2c(self.port)
        self.addCleanup(client.transport.loseConnection)
        first = client.request(b"GET", b"/a")
        second = client.request(b"POST", b"/b", body=b"x" * 100000)
        a = yield first
        b = yield second
        self.assertEqual((a.status, b.status), (200, 200))
        self.assertTrue(a.body.startswith(b"GET /a 0\n"), a.body)
        self.assertTrue(b.body.startswith(b"POST /b 100000\n"), b.body)
        self.assertEqual(echoed_headers(a.body)[b"x-forwarded-proto"], [b"http"])

    @inlineCallbacks
    def test_an_upstream_balanced_by_client_ip_takes_http2_requests(self):
        """
        An HTTP/2 request's channel is its stream; the client's address is
        its connection's, as for HTTP/1.1.
        """
        upstream = attr.evolve(self.config.upstreams["app"], balance="hash")
        self.config = attr.evolve(self.config, upstreams={"app": upstream})
        self.start()
        client = yield connect_h2c(self.port)
        self.addCleanup(client.transport.loseConnection)
        answer = yield client.request(b"GET", b"/hashed")
        self.assertEqual(answer.status, 200)
        self.assertTrue(answer.body.startswith(b"GET /hashed 0\n"), answer.body)

    @inlineCallbacks
    def test_preface_without_h2c_is_refused_with_505(self):
        self.start(h2c=False)
        answer = yield raw_exchange(self.port, PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        self.assertTrue(
            answer.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), answer
        )
        self.assertIn(b"Connection: close\r\n", answer)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_upgrade_to_h2c_is_answered_in_http11_and_not_forwarded(self):
        for h2c in (False, True):
            self.start(h2c=h2c)
            answer = yield raw_exchange(self.port, UPGRADE)
            head, _, body = answer.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
            self.assertNotIn(b"upgrade", head.lower())
            received = echoed_headers(body)
            self.assertNotIn(b"upgrade", received)
            self.assertNotIn(b"http2-settings", received)
            self.assertNotIn(b"connection", received)

    @inlineCallbacks
    def test_curl_http2_upgrade_with_h2c_upgrade_continues_in_http2(self):
        url = self.start(upgrade=True)
        out, err, code = yield run(
            "curl", "-sS", "-v", "--http2", url + "/first", url + "/second"
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"< HTTP/1.1 101 Switching Protocols", err)
        self.assertEqual(err.count(b"< HTTP/2 200"), 2, err)
        self.assertEqual(err.count(b"Connected to"), 1, err)
        self.assertIn(b"GET /first 0\n", out)
        self.assertIn(b"GET /second 0\n", out)
        self.assertEqual(out.count(b"via: 2 txrevproxy"), 2)
        self.assertEqual(self.backend.connections, 1)

    @inlineCallbacks
    def test_upgrade_of_a_request_with_a_body_is_not_taken(self):
        self.start(upgrade=True)
        answer = yield raw_exchange(
            self.port,
            UPGRADE.replace(b"GET /up", b"POST /up").replace(
                b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\nhello"
            ),
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertIn(b"POST /up 5\n", answer)
        self.assertNotIn(b"upgrade", answer.lower())

    @inlineCallbacks
    def test_curl_http2_upgrade_gets_http11(self):
        url = self.start()
        out, err, code = yield run("curl", "-sS", "-i", "--http2", url + "/u")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertNotIn(b"upgrade", out.partition(b"\r\n\r\n")[2].lower())

    @inlineCallbacks
    def test_prior_knowledge_after_a_proxy_protocol_header(self):
        self.start(proxy_protocol=True)
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        client.send_headers(
            1,
            [(":method", "GET"), (":scheme", "http"), (":authority", "h"), (":path", "/pp")],
            end_stream=True,
        )
        raw = yield connect_raw(
            self.port, b"PROXY TCP4 192.0.2.7 192.0.2.8 1111 80\r\n" + client.data_to_send()
        )
        self.addCleanup(raw.transport.loseConnection)
        body = []

        def answered():
            events = client.receive_data(raw.received)
            raw.received = b""
            body.extend(e.data for e in events if isinstance(e, h2.events.DataReceived))
            return any(isinstance(e, h2.events.StreamEnded) for e in events)

        yield until(answered)
        seen = echoed_headers(b"".join(body))
        self.assertEqual(seen[b"x-forwarded-for"], [b"192.0.2.7"])
        self.assertEqual(seen[b"via"], [b"2 txrevproxy"])
