"""
Request hardening: the strict reading of request heads and chunked bodies,
the limits of C{[server]} (414, 431, 405) and the header timeout against
slow clients (408).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import TestCase

from txrevproxy.config import ConfigError
from txrevproxy.config.model import ServerSettings
from txrevproxy.http.chunked import ChunkedDecoder, MalformedChunks
from txrevproxy.http.request_head import field_line_status, request_line_status
from txrevproxy.server.site import ProxySite

from ..support.channels import connect
from ..support.configs import document, parse
from ..support.resources import Recorder


class RequestLineTests(TestCase):
    def test_table(self):
        for line, status in [
            (b"GET / HTTP/1.1", 0),
            (b"GET /a?b=c HTTP/1.0", 0),
            (b"PROPFIND /x HTTP/1.1", 0),
            (b"GET http://a/b HTTP/1.1", 0),
            (b"OPTIONS * HTTP/1.1", 0),
            (b"GET /caf%C3%A9 HTTP/1.1", 0),
            (b"GET /caf\xc3\xa9 HTTP/1.1", 400),
            (b"GET /\xae\xae/admin HTTP/1.1", 400),
            (b"GET / HTTP/2.0", 505),
            (b"GET / HTTP/1.2", 505),
            (b"GET / HTTP/1.x", 400),
            (b"GET / http/1.1", 400),
            (b"GET  / HTTP/1.1", 400),
            (b"GET / HTTP/1.1 ", 400),
            (b" GET / HTTP/1.1", 400),
            (b"GET\t/ HTTP/1.1", 400),
            (b"GET /a b HTTP/1.1", 400),
            (b"GET /a\x00 HTTP/1.1", 400),
            (b"GET /a\x7f HTTP/1.1", 400),
            (b"G(T / HTTP/1.1", 400),
            (b"GET HTTP/1.1", 400),
            (b"", 400),
        ]:
            self.assertEqual(request_line_status(line), status, line)


class FieldLineTests(TestCase):
    def test_table(self):
        for line, version, status in [
            (b"Host: a", b"HTTP/1.1", 0),
            (b"X-A: b\tc d", b"HTTP/1.1", 0),
            (b"X-A: caf\xc3\xa9", b"HTTP/1.1", 0),
            (b"Transfer-Encoding: chunked", b"HTTP/1.1", 0),
            (b"transfer-encoding:CHUNKED ", b"HTTP/1.1", 0),
            (b"Transfer-Encoding: chunked", b"HTTP/1.0", 400),
            (b"Transfer-Encoding: identity", b"HTTP/1.1", 400),
            (b"Transfer-Encoding: gzip, chunked", b"HTTP/1.1", 400),
            (b"Transfer-Encoding: chunked, chunked", b"HTTP/1.1", 400),
            (b" folded", b"HTTP/1.1", 400),
            (b"\tfolded", b"HTTP/1.1", 400),
            (b"X-A: b\rc", b"HTTP/1.1", 400),
            (b"X-A: b\nc", b"HTTP/1.1", 400),
            (b"X-A: b\x00c", b"HTTP/1.1", 400),
            (b"X-A: b\x1bc", b"HTTP/1.1", 400),
            (b"X-A: b\x7fc", b"HTTP/1.1", 400),
        ]:
            self.assertEqual(field_line_status(line, version), status, line)


def decode(pieces):
    data, ends = [], []
    decoder = ChunkedDecoder(data.append, ends.append)
    for piece in pieces:
        decoder.dataReceived(piece)
    return b"".join(data), ends


class ChunkedDecoderTests(TestCase):
    BODY = b"5\r\nhello\r\n3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT"

    def test_whole(self):
        self.assertEqual(decode([self.BODY]), (b"helloabc0123456789", [b"NEXT"]))

    def test_byte_by_byte(self):
        data, ends = decode([bytes([b]) for b in self.BODY])
        self.assertEqual((data, ends), (b"helloabc0123456789", [b""]))

    def test_malformed(self):
        for body in [
            b"zz\r\n",
            b"0x2\r\nab\r\n",
            b"-2\r\nab\r\n",
            b"+2\r\nab\r\n",
            b" 2\r\nab\r\n",
            b"2 \r\nab\r\n",
            b"f" * 17 + b"\r\n",
            b"\r\n",
            b"2\r\nabcd\r\n",
            b"2\r\nab\n0\r\n\r\n",
            b"2\nab\n",
            b"2\rab",
            b"2;\x00\r\nab\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nX-T : 1\r\n\r\n",
            b"0\r\n" + b"X-T: " + b"v" * 5000 + b"\r\n\r\n",
            b"1" * 5000,
        ]:
            self.assertRaises(MalformedChunks, decode, [body])

    def test_cut_short(self):
        decoder = ChunkedDecoder(lambda data: None, lambda rest: None)
        decoder.dataReceived(b"5\r\nhel")
        self.assertRaises(MalformedChunks, decoder.noMoreData)


def status(transport: StringTransport) -> int:
    return int(transport.value().split(b" ", 2)[1])


class LimitTests(TestCase):
    def test_request_line_over_the_limit_gets_414(self):
        _, _, channel, transport = connect(ServerSettings(max_request_line=100))
        channel.dataReceived(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status(transport), 414)
        self.assertTrue(transport.disconnecting)

    def test_unfinished_request_line_over_the_limit_gets_414(self):
        _, _, channel, transport = connect(
            ServerSettings(max_request_line=100, max_header_size=200)
        )
        channel.dataReceived(b"GET /" + b"a" * 300)
        self.assertEqual(status(transport), 414)

    def test_too_many_headers_get_431(self):
        recorder = Recorder()
        _, _, channel, transport = connect(ServerSettings(max_headers=3), recorder)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
        self.assertEqual(len(recorder.requests), 1)
        channel, transport = connect(ServerSettings(max_headers=3), recorder)[2:]
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        )
        self.assertEqual(status(transport), 431)
        self.assertEqual(len(recorder.requests), 1)

    def test_head_over_the_size_limit_gets_431(self):
        _, _, channel, transport = connect(ServerSettings(max_header_size=100))
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nHost: a\r\nA: " + b"v" * 80 + b"\r\n\r\n"
        )
        self.assertEqual(status(transport), 431)

    def test_methods_not_allowed_get_405_with_allow(self):
        recorder = Recorder()
        _, _, channel, transport = connect(
            ServerSettings(allowed_methods=("GET", "HEAD")), recorder
        )
        channel.dataReceived(b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status(transport), 405)
        self.assertIn(b"\r\nAllow: GET, HEAD\r\n", transport.value())
        self.assertEqual(recorder.requests, [])
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(recorder.requests), 1)


class HeaderTimeoutTests(TestCase):
    def test_slow_head_gets_408(self):
        clock, _, channel, transport = connect(ServerSettings(header_timeout=10))
        channel.dataReceived(b"GET / HTTP/1.1\r\n")
        for _ in range(9):
            clock.advance(1)
            channel.dataReceived(b"X: y\r\n")
        self.assertEqual(transport.value(), b"")
        clock.advance(2)
        self.assertEqual(status(transport), 408)
        self.assertTrue(transport.disconnecting)

    def test_slow_request_line_gets_408(self):
        clock, _, channel, transport = connect(ServerSettings(header_timeout=10))
        for byte in b"GET / HTT":
            channel.dataReceived(bytes([byte]))
            clock.advance(1)
        clock.advance(2)
        self.assertEqual(status(transport), 408)

    def test_idle_keepalive_and_completed_heads_are_left_alone(self):
        recorder = Recorder()
        clock, site, channel, transport = connect(
            ServerSettings(header_timeout=10), recorder
        )
        clock.advance(30)
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        clock.advance(30)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(recorder.requests), 1)
        site.stopFactory()


class LingeringTransport(StringTransport):
    """
    A transport whose clean close never completes (a client that does not
    read what is written to it), and which records being aborted.
    """

    aborted = False

    def abortConnection(self):
        self.aborted = True


class KeepAliveTimeoutTests(TestCase):
    """
    A client connection idle for C{keepalive_timeout} is closed by the
    site's sweep, about once a second.
    """

    def test_idle_connection_is_closed(self):
        clock, site, channel, transport = connect(
            ServerSettings(keepalive_timeout=5, header_timeout=60)
        )
        clock.advance(4)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)
        # Closed without a word: there is no request to answer.
        self.assertEqual(transport.value(), b"")

    def test_idle_time_counts_from_the_end_of_the_last_response(self):
        recorder = Recorder()
        clock, site, channel, transport = connect(
            ServerSettings(keepalive_timeout=5, header_timeout=60), recorder
        )
        clock.advance(3)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        # A response that takes longer than the idle timeout is not idle.
        clock.advance(10)
        self.assertFalse(transport.disconnecting)
        [request] = recorder.requests
        request.setHeader(b"content-length", b"0")
        request.finish()
        clock.advance(4)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_a_request_being_read_is_not_idle(self):
        clock, site, channel, transport = connect(
            ServerSettings(keepalive_timeout=5, header_timeout=60)
        )
        clock.advance(3)
        channel.dataReceived(b"GET / HTTP/1.1\r\n")
        clock.advance(10)
        self.assertFalse(transport.disconnecting)

    def test_a_close_that_does_not_complete_becomes_an_abort(self):
        clock = MemoryReactorClock()
        site = ProxySite(
            Recorder(),
            reactor=clock,
            settings=ServerSettings(keepalive_timeout=5, header_timeout=60),
        )
        site.startFactory()
        channel = site.buildProtocol(None)
        transport = LingeringTransport()
        channel.makeConnection(transport)
        clock.advance(6)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        clock.advance(channel.abortTimeout)
        self.assertTrue(transport.aborted)


class ConfigTests(TestCase):
    def test_keys(self):
        config = parse(
            document(
                server='max_request_line = "4KiB"\nmax_headers = 50\n'
                'max_header_size = "16KiB"\nheader_timeout = "5s"\n'
                'allowed_methods = ["GET", "POST"]'
            )
        )
        server = config.server
        self.assertEqual(
            (
                server.max_request_line,
                server.max_headers,
                server.max_header_size,
                server.header_timeout,
                server.allowed_methods,
            ),
            (4096, 50, 16384, 5.0, ("GET", "POST")),
        )

    def test_problems(self):
        with self.assertRaises(ConfigError) as caught:
            parse(
                document(
                    server='max_headers = 0\nheader_timeout = "soon"\n'
                    'allowed_methods = ["GET", "BAD METHOD"]'
                )
            )
        problems = "\n".join(caught.exception.problems)
        for key in (
            "server.max_headers",
            "server.header_timeout",
            "server.allowed_methods[1]",
        ):
            self.assertIn(key, problems)


class ConnectionLimitTests(TestCase):
    def test_connections_per_address(self):
        clock = MemoryReactorClock()
        site = ProxySite(
            Recorder(), reactor=clock, settings=ServerSettings(max_connections_per_ip=2)
        )

        def open_from(host):
            channel = site.buildProtocol(None)
            transport = StringTransport(peerAddress=IPv4Address("TCP", host, 4321))
            channel.makeConnection(transport)
            return channel, transport

        first, second = open_from("192.0.2.1"), open_from("192.0.2.1")
        other = open_from("192.0.2.2")
        third = open_from("192.0.2.1")
        self.assertEqual(status(third[1]), 429)
        self.assertTrue(third[1].disconnecting)
        for channel, transport in (first, second, other):
            self.assertEqual(transport.value(), b"")
        third[0].connectionLost(None)
        first[0].connectionLost(None)
        again = open_from("192.0.2.1")
        self.assertEqual(again[1].value(), b"")

    def test_requests_per_connection(self):
        recorder = Recorder(answer_at_once=404)
        _, _, channel, transport = connect(
            ServerSettings(max_requests_per_connection=2), recorder
        )
        channel.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertNotIn(b"Connection: close", transport.value())
        channel.dataReceived(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"Connection: close", transport.value())
        self.assertTrue(transport.disconnecting)


class BodyRateTests(TestCase):
    def start_upload(self, **settings):
        recorder = Recorder()
        clock, site, channel, transport = connect(
            ServerSettings(body_timeout=10, min_body_rate=100, **settings), recorder
        )
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        return clock, channel, transport, recorder.requests[0]

    def test_a_body_slower_than_the_minimum_rate_gets_408(self):
        clock, channel, transport, _ = self.start_upload()
        for _ in range(12):
            channel.dataReceived(b"x" * 50)  # 50 bytes a second: half the rate
            clock.advance(1)
        self.assertEqual(status(transport), 408)
        self.assertTrue(transport.disconnecting)

    def test_a_body_at_the_rate_goes_on(self):
        clock, channel, transport, _ = self.start_upload()
        for _ in range(30):
            channel.dataReceived(b"x" * 150)
            clock.advance(1)
        self.assertEqual(transport.value(), b"")

    def test_time_the_proxy_does_not_read_is_not_counted(self):
        clock, channel, transport, request = self.start_upload()
        request.pauseReading()
        clock.advance(60)
        request.resumeReading()
        for _ in range(5):
            channel.dataReceived(b"x" * 150)
            clock.advance(1)
        self.assertEqual(transport.value(), b"")


class HandOverTests(TestCase):
    """
    L{ProxySite.handOver}: a reload's new site takes the open connections,
    with their per-address counts, and its own limits.
    """

    def test_connections_join_the_new_site_with_its_limits(self):
        clock, old, channel, transport = connect(ServerSettings(max_connections_per_ip=5))
        new = ProxySite(
            Recorder(answer_at_once=404),
            reactor=clock,
            settings=ServerSettings(max_connections_per_ip=1, max_headers=2),
        )
        old.handOver(new)
        self.assertEqual((old.channels, new.channels), (set(), {channel}))
        self.assertEqual(old.connection_count(b"192.0.2.1"), 0)
        self.assertEqual(new.connection_count(b"192.0.2.1"), 1)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
        self.assertEqual(status(transport), 431)

    def test_a_listener_that_turned_to_tls_closes_the_idle_connections(self):
        clock, old, channel, transport = connect(ServerSettings())
        new = ProxySite(Recorder(), reactor=clock, settings=ServerSettings(), scheme=b"https")
        old.handOver(new)
        self.assertEqual(new.channels, set())
        self.assertTrue(transport.disconnecting)
