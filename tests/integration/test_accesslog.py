"""
The access log: both formats line for line, buffering until the timer or
the size limit, reopening after logrotate, and lines written by a real
proxy: of clients that reset, half-close or leave mid-answer, and of
WebSocket tunnels.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Optional

import attr
import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web import resource, server
from twisted.web.http_headers import Headers

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config
from txrevproxy.config.model import LogSettings
from txrevproxy.observe.accesslog import FLUSH_INTERVAL, FLUSH_SIZE, AccessLog

from ..support.loopback import Echo, connect_raw, listen
from ..support.observed import ObservedProxy, reset
from ..support.processes import temporary_directory
from ..support.tls_clients import ProbingClientTLS, connect_tls
from ..support.tunnels import HANDSHAKE, EchoFactory
from ..support.waiting import until

#: 2026-11-23 10:20:30 UTC
NOW = 1795429230.0


@attr.s(auto_attribs=True)
class Connection:
    client_ip: bytes = b"192.0.2.7"
    tls_version: object = "TLSv1.3"


@attr.s(auto_attribs=True)
class Server:
    url: str


@attr.s(auto_attribs=True)
class Backend:
    server: Server


@attr.s(auto_attribs=True)
class Request:
    """
    The parts of a finished L{ProxyRequest} a line is made of.
    """

    method: bytes = b"GET"
    uri: bytes = b"/products/1?x=1"
    clientproto: bytes = b"HTTP/1.1"
    code: int = 200
    sentLength: int = 1234
    bodyBytes: int = 56
    request_id: bytes = b"0123456789abcdef"
    timed_out: Optional[str] = None
    trace: object = None
    connection: Connection = attr.Factory(Connection)
    backend: object = attr.Factory(lambda: Backend(Server("http://10.0.0.1:8080")))
    requestHeaders: Headers = attr.Factory(
        lambda: Headers(
            {
                b"user-agent": [b'curl/8.0 "quoted"'],
                b"referer": [b"https://a.test/"],
                b"host": [b"shop.test:8080"],
            }
        )
    )


@attr.s(auto_attribs=True)
class Trace:
    """
    A request's trace, as the log reads it.
    """

    trace_id: str

    def trace_id_text(self) -> str:
        return self.trace_id


class Lines:
    """
    An access log writing into a file whose new lines the test reads.
    """

    def __init__(self, case: TestCase, format: str) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.path = Path(temporary_directory(case)) / "access.log"
        self.log = AccessLog(self.clock)
        self.log.configure(LogSettings(str(self.path), format))
        self.log.start()
        case.addCleanup(self.log.stop)
        self._seen = 0

    def read(self) -> bytes:
        data = self.path.read_bytes()[self._seen :]
        self._seen += len(data)
        return data

    def written(self, request, duration: float, upstream) -> bytes:
        """
        What the log writes for one request, once its timer fired.
        """
        self.log.record(request, duration, upstream)
        self.clock.advance(FLUSH_INTERVAL)
        return self.read()


class FormatTests(TestCase):
    def test_combined_line(self):
        lines = Lines(self, "combined")
        written = lines.written(Request(), 0.25, "app")
        self.assertEqual(
            written,
            b'192.0.2.7 - - [23/Nov/2026:10:20:30 +0000] "GET /products/1?x=1 '
            b'HTTP/1.1" 200 1234 "https://a.test/" "curl/8.0 \\x22quoted\\x22"\n',
        )

    def test_combined_line_without_body_referer_or_user_agent(self):
        lines = Lines(self, "combined")
        request = Request(code=499, sentLength=0, requestHeaders=Headers())
        written = lines.written(request, 0.25, None)
        self.assertEqual(
            written,
            b'192.0.2.7 - - [23/Nov/2026:10:20:30 +0000] "GET /products/1?x=1 '
            b'HTTP/1.1" 499 - "-" "-"\n',
        )

    def test_json_line(self):
        lines = Lines(self, "json")
        lines.log.record(Request(), 0.0123456789, "app", "shop")
        lines.clock.advance(FLUSH_INTERVAL)
        written = lines.read()
        self.assertEqual(
            written,
            b'{"time":"2026-11-23T10:20:30Z","client":"192.0.2.7","method":"GET",'
            b'"path":"/products/1","query":"x=1","uri":"/products/1?x=1",'
            b'"host":"shop.test:8080","route":"shop",'
            b'"protocol":"HTTP/1.1","status":200,'
            b'"bytes":1234,"received":56,"duration":0.012346,"upstream":"app",'
            b'"backend":"http://10.0.0.1:8080","request_id":"0123456789abcdef",'
            b'"tls":"TLSv1.3","user_agent":"curl/8.0 \\"quoted\\"",'
            b'"referer":"https://a.test/","timeout":null,"trace_id":null}\n',
        )

    def test_json_line_of_a_worker_says_which(self):
        lines = Lines(self, "json")
        lines.log = AccessLog(lines.clock, worker=1)
        lines.log.configure(LogSettings(str(lines.path), "json"))
        lines.log.start()
        self.addCleanup(lines.log.stop)
        line = json.loads(lines.written(Request(), 0.5, "app"))
        self.assertEqual(line["worker"], 1)
        self.assertEqual(list(line)[-1], "worker")

    def test_a_traced_request_has_its_trace_id_in_both_formats(self):
        trace = Trace("4bf92f3577b34da6a3ce929d0e0e4736")
        combined = Lines(self, "combined").written(
            Request(trace=trace, timed_out="read"), 0.25, "app"
        )
        self.assertTrue(
            combined.endswith(
                b" timeout=read trace=4bf92f3577b34da6a3ce929d0e0e4736\n"
            ),
            combined,
        )
        line = json.loads(Lines(self, "json").written(Request(trace=trace), 0.25, "app"))
        self.assertEqual(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736")

    def test_json_line_of_a_request_no_backend_answered(self):
        lines = Lines(self, "json")
        request = Request(backend=None, requestHeaders=Headers())
        request.connection.tls_version = None
        request.uri = b"/products/1"
        written = lines.written(request, 0.5, None)
        line = json.loads(written)
        self.assertEqual(
            [
                line[k]
                for k in (
                    "upstream", "backend", "tls", "user_agent", "referer", "host",
                    "route", "query",
                )
            ],
            [None] * 8,
        )


class BufferTests(TestCase):
    def test_lines_wait_for_the_timer(self):
        lines = Lines(self, "combined")
        lines.log.record(Request(), 0.1, "app")
        self.assertEqual(lines.read(), b"")
        lines.clock.advance(FLUSH_INTERVAL)
        self.assertEqual(lines.read().count(b"\n"), 1)

    def test_a_full_buffer_is_written_at_once(self):
        lines = Lines(self, "combined")
        count = 0
        written = b""
        while not written:
            lines.log.record(Request(), 0.1, "app")
            count += 1
            written = lines.read()
        self.assertEqual(written.count(b"\n"), count)
        self.assertGreaterEqual(len(written), FLUSH_SIZE)

    def test_reopen_writes_to_the_new_file(self):
        directory = Path(temporary_directory(self))
        path = directory / "access.log"
        clock = Clock()
        log = AccessLog(clock)
        log.configure(LogSettings(str(path), "combined"))
        log.start()
        self.addCleanup(log.stop)
        log.record(Request(), 0.1, "app")
        path.rename(directory / "access.log.1")
        log.record(Request(code=404), 0.1, "app")
        log.reopen()
        log.record(Request(code=500), 0.1, "app")
        log.stop()
        old = (directory / "access.log.1").read_bytes()
        self.assertEqual([b" 200 " in l for l in old.splitlines()], [True, False])
        self.assertIn(b'" 404 ', old)
        self.assertIn(b'" 500 ', path.read_bytes())


class ProxyAccessLogTests(TestCase):
    @inlineCallbacks
    def test_proxy_writes_a_json_line_per_request(self):
        backend = yield listen(server.Site(Echo()), self)
        directory = Path(temporary_directory(self))
        config = directory / "proxy.toml"
        config.write_text(
            '[server]\ntrusted_proxies = ["127.0.0.1"]\n'
            '[listeners.web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:%d" }]\n'
            '[[routes]]\nname = "everything"\nupstream = "app"\n'
            '[log]\naccess = "access.log"\nformat = "json"\n' % (backend,)
        )
        service = ProxyService(load_config(str(config)), reactor)
        service.startService()
        port = service.ports[0].getHost().port
        response = yield treq.get(
            "http://127.0.0.1:%d/a?b=c" % (port,),
            headers={"X-Request-ID": "given-id", "User-Agent": "test"},
            persistent=False,
        )
        body = yield treq.content(response)
        yield service.stopService()
        [line] = (directory / "access.log").read_text().splitlines()
        entry = json.loads(line)
        entry.pop("time")
        duration = entry.pop("duration")
        self.assertGreaterEqual(duration, 0)
        self.assertEqual(
            entry,
            {
                "client": "127.0.0.1",
                "method": "GET",
                "path": "/a",
                "query": "b=c",
                "uri": "/a?b=c",
                "host": "127.0.0.1:%d" % (port,),
                "route": "everything",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": len(body),
                "received": 0,
                "upstream": "app",
                "backend": "http://127.0.0.1:%d" % (backend,),
                "request_id": "given-id",
                "tls": None,
                "user_agent": "test",
                "referer": None,
                "timeout": None,
                "trace_id": None,
            },
        )
        self.assertEqual(response.headers.getRawHeaders("x-request-id"), ["given-id"])


class ClientGoneTests(ObservedProxy, TestCase):
    """
    The lines of requests whose client left, or only half-closed, over
    real sockets.
    """

    timeout = 15

    @inlineCallbacks
    def setUp(self):
        yield self.start_held_backend()
        self.start()

    @inlineCallbacks
    def test_a_client_that_resets_before_its_answer_is_logged_with_499(self):
        client = yield connect_raw(self.port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: self.held.requests)
        backend_request = self.held.requests[0]
        reset(client.transport)
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual(
            (line["status"], line["path"], line["client"], line["bytes"]),
            (499, "/slow", "127.0.0.1", 0),
        )
        # The backend exchange was given up, and nothing stays in flight.
        yield until(lambda: backend_request._disconnected)
        yield until(lambda: self.gauge("client_connections") == 0)
        self.assertEqual(set(self.backend_gauges().values()), {0})
        snapshot = self.service.metrics.snapshot()["requests"]
        self.assertEqual(snapshot["web\t0\tapp\t4xx"], 1)

    @inlineCallbacks
    def test_a_client_that_half_closes_gets_its_answer(self):
        client = yield connect_raw(
            self.port,
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        yield until(lambda: self.held.requests)
        # shutdown(SHUT_WR): the client sends nothing more, and reads on.
        client.transport.loseWriteConnection()
        yield until(lambda: any(c.readClosed for c in self.channels()))
        self.held.answer(b"first")
        yield until(lambda: self.held.requests)
        self.held.answer(b"second")
        received = yield client.closed
        self.assertEqual(received.count(b"HTTP/1.1 200 OK\r\n"), 2)
        self.assertTrue(received.endswith(b"second"))
        self.assertIn(b"\r\n\r\nfirst", received)
        self.assertEqual(
            [(line["path"], line["status"], line["bytes"]) for line in self.logged()],
            [("/a", 200, 5), ("/b", 200, 6)],
        )
        self.assertEqual(self.gauge("client_connections"), 0)

    @inlineCallbacks
    def answered_after_the_client_closed(self, body: bytes = b"late answer"):
        """
        Answer the request the backend holds once the proxy saw the
        client's FIN, and return the one line logged.
        """
        yield until(lambda: any(c.readClosed for c in self.channels()))
        self.held.answer(body)
        yield until(lambda: self.logged())
        [line] = self.logged()
        return line

    @inlineCallbacks
    def test_a_client_that_closes_its_socket_before_its_answer_is_logged_with_499(self):
        client = socket.create_connection(("127.0.0.1", self.port))
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: self.held.requests)
        # A plain close(): a FIN, as a half-close would send.
        client.close()
        line = yield self.answered_after_the_client_closed()
        self.assertEqual((line["status"], line["path"]), (499, "/slow"))
        yield until(lambda: self.gauge("client_connections") == 0)
        self.assertEqual(set(self.backend_gauges().values()), {0})
        snapshot = self.service.metrics.snapshot()["requests"]
        self.assertEqual(snapshot["web\t0\tapp\t4xx"], 1)

    @inlineCallbacks
    def test_curl_that_times_out_before_its_answer_is_logged_with_499(self):
        curl = shutil.which("curl")
        if curl is None:
            raise SkipTest("curl is not installed")
        code = yield getProcessValue(
            curl,
            ["-s", "-o", "/dev/null", "-m", "0.3", "http://127.0.0.1:%d/slow" % (self.port,)],
            env={},
        )
        self.assertEqual(code, 28)  # curl's "operation timed out"
        line = yield self.answered_after_the_client_closed()
        self.assertEqual((line["status"], line["path"]), (499, "/slow"))
        yield until(lambda: self.gauge("client_connections") == 0)

    @inlineCallbacks
    def test_a_client_that_half_closes_one_request_gets_it_and_a_200_line(self):
        client = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(client.close)
        client.sendall(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: self.held.requests)
        client.shutdown(socket.SHUT_WR)
        line = yield self.answered_after_the_client_closed(b"the answer")
        self.assertEqual((line["status"], line["bytes"]), (200, len(b"the answer")))
        # Read without blocking the reactor, which has the close to send.
        client.setblocking(False)
        pieces = []

        def closed() -> bool:
            try:
                pieces.append(client.recv(65536))
            except BlockingIOError:
                return False
            return not pieces[-1]

        yield until(closed)
        received = b"".join(pieces)
        self.assertTrue(received.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(received.endswith(b"\r\n\r\nthe answer"))

    @inlineCallbacks
    def test_a_client_that_closed_and_resets_mid_answer_frees_its_backend_at_once(self):
        client = socket.create_connection(("127.0.0.1", self.port))
        client.sendall(b"GET /stalls HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: self.held.requests)
        client.close()
        yield until(lambda: any(c.readClosed for c in self.channels()))
        # The head and a first part go out, then the backend stalls: the
        # client's reset to them ends the exchange without another write.
        backend_request = self.held.requests.pop(0)
        backend_request.setHeader(b"content-length", b"100")
        backend_request.write(b"first part")
        yield until(lambda: backend_request._disconnected)
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual((line["status"], line["path"]), (200, "/stalls"))
        yield until(lambda: self.gauge("client_connections") == 0)
        self.assertEqual(set(self.backend_gauges().values()), {0})

    @inlineCallbacks
    def test_a_tls_client_that_closes_before_its_answer_is_logged_with_499_at_once(self):
        self.start(tls=True)
        client = yield connect_tls(
            self.tls_port, ProbingClientTLS("localhost", alpn=[b"http/1.1"])
        )
        client.transport.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: self.held.requests)
        backend_request = self.held.requests[0]
        # Twisted's TLS layer ends the connection on the client's FIN: no
        # answer is needed to tell that the client left.
        client.transport.loseConnection()
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual((line["status"], line["tls"]), (499, "TLSv1.3"))
        yield until(lambda: backend_request._disconnected)

    @inlineCallbacks
    def test_a_client_that_half_closes_a_body_cut_short_is_gone(self):
        client = yield connect_raw(
            self.port, b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"
        )
        # The body streams: the backend is connected before it is whole.
        yield until(lambda: self.backend_site.connections)
        client.transport.loseWriteConnection()
        yield client.closed
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual((line["status"], line["received"]), (499, 3))

    @inlineCallbacks
    def test_a_client_that_resets_mid_answer_is_logged_with_what_it_got(self):
        self.start(backend_port=(yield listen(server.Site(Trickle()), self)))
        client = yield connect_raw(self.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        yield until(lambda: b"first part" in client.received)
        reset(client.transport)
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual((line["status"], line["bytes"]), (200, len(b"first part")))
        yield until(lambda: self.gauge("client_connections") == 0)


class Trickle(resource.Resource):
    """
    A backend that sends the first part of a chunked body and never the
    rest.
    """

    isLeaf = True

    def render(self, request):
        request.write(b"first part")
        return server.NOT_DONE_YET


class TunnelLogTests(ObservedProxy, TestCase):
    timeout = 15

    @inlineCallbacks
    def test_a_websocket_is_logged_and_counted_when_it_ends(self):
        backend = EchoFactory()
        self.backend_port = yield listen(backend, self)
        self.start()
        client = yield connect_raw(self.port, HANDSHAKE)
        yield until(lambda: b"hello from backend" in client.received)
        self.assertEqual(self.logged(), [])
        self.assertEqual(self.gauge("client_connections"), 1)
        client.transport.write(b"frame-one")
        yield until(lambda: client.received.endswith(b"FRAME-ONE"))
        client.transport.loseConnection()
        yield backend.closed
        yield until(lambda: self.logged())
        [line] = self.logged()
        self.assertEqual(
            (line["status"], line["path"], line["received"], line["bytes"]),
            (101, "/chat", len(b"frame-one"), len(b"hello from backendFRAME-ONE")),
        )
        self.assertGreaterEqual(line["duration"], 0)
        snapshot = self.service.metrics.snapshot()
        self.assertEqual(snapshot["requests"]["web\t0\tapp\t1xx"], 1)
        self.assertEqual(snapshot["received_bytes"]["web"], len(b"frame-one"))
        yield until(lambda: self.gauge("client_connections") == 0)
        yield until(lambda: set(self.backend_gauges().values()) == {0})
