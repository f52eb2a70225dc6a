"""
Tests for L{txrevproxy.server.channel} over a L{StringTransport}: request
bodies reach the handler as they arrive, and a request answered before its
body was read closes the connection, so the rest of that body is never
parsed as a request.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from txrevproxy.config.model import ServerSettings
from txrevproxy.server.site import ProxySite

from ..support.resources import Recorder


def connect(resource, **settings):
    site = ProxySite(
        resource, reactor=MemoryReactorClock(), settings=ServerSettings(**settings)
    )
    channel = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    channel.makeConnection(transport)
    return channel, transport


class StreamingDispatchTests(TestCase):
    def test_request_with_body_is_dispatched_at_its_headers(self):
        recorder = Recorder()
        channel, _ = connect(recorder)
        channel.dataReceived(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n")
        self.assertEqual(len(recorder.requests), 1)
        request = recorder.requests[0]
        self.assertEqual((request.method, request.uri), (b"POST", b"/up"))
        self.assertEqual(request.bodyLength, 10)
        channel.dataReceived(b"hello")
        self.assertEqual(recorder.events, [("body", b"hello")])
        self.assertFalse(request.bodyComplete)
        channel.dataReceived(b"world")
        self.assertEqual(recorder.events, [("body", b"hello"), ("body", b"world"), "finished"])
        self.assertTrue(request.bodyComplete)

    def test_chunked_body_streams_decoded(self):
        recorder = Recorder()
        channel, _ = connect(recorder)
        channel.dataReceived(
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        self.assertIsNone(recorder.requests[0].bodyLength)
        self.assertEqual(recorder.events, [("body", b"abc")])
        channel.dataReceived(b"0\r\n\r\n")
        self.assertEqual(recorder.events[-1], "finished")

    def test_bodyless_request_is_dispatched_complete(self):
        recorder = Recorder()
        channel, _ = connect(recorder)
        channel.dataReceived(b"GET /x?y HTTP/1.1\r\nHost: h\r\n\r\n")
        request = recorder.requests[0]
        self.assertTrue(request.bodyComplete)
        self.assertEqual((request.path, request.uri), (b"/x", b"/x?y"))

    def test_body_over_the_limit_reaches_the_handler_as_too_large(self):
        recorder = Recorder()
        channel, _ = connect(recorder, max_request_body=4)
        channel.dataReceived(
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        channel.dataReceived(b"3\r\ndef\r\n")
        self.assertEqual(recorder.events, [("body", b"abc"), "too large"])

    def test_client_disconnect_reaches_the_handler(self):
        recorder = Recorder()
        channel, _ = connect(recorder)
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        channel.connectionLost(None)
        self.assertEqual(recorder.events[-1], "gone")

    def test_trusted_peer_request_id_is_kept(self):
        recorder = Recorder()
        channel, _ = connect(
            recorder, trusted_proxies=(ipaddress.ip_network("192.0.2.0/24"),)
        )
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: abc\r\n\r\n")
        self.assertEqual(recorder.requests[0].request_id, b"abc")

    def test_untrusted_peer_request_id_is_replaced(self):
        recorder = Recorder()
        channel, _ = connect(recorder)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: abc\r\n\r\n")
        request_id = recorder.requests[0].request_id
        self.assertNotEqual(request_id, b"abc")
        self.assertRegex(request_id, rb"^[0-9a-f]{16}$")


class EarlyAnswerTests(TestCase):
    def test_rest_of_an_unread_body_is_never_parsed_as_a_request(self):
        recorder = Recorder(answer_at_once=404)
        channel, transport = connect(recorder)
        smuggled = b"GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
        channel.dataReceived(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
        )
        channel.dataReceived(smuggled)
        self.assertEqual(len(recorder.requests), 1)
        response = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 404 Not Found\r\n"))
        self.assertIn(b"Connection: close\r\n", response)
        self.assertTrue(transport.disconnecting)

    def test_answered_bodyless_requests_keep_the_connection(self):
        recorder = Recorder(answer_at_once=404)
        channel, transport = connect(recorder)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual([r.uri for r in recorder.requests], [b"/a", b"/b"])
        self.assertFalse(transport.disconnecting)

    def test_connection_header_list_with_close_ends_the_connection(self):
        recorder = Recorder(answer_at_once=404)
        channel, transport = connect(recorder)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te, close\r\n\r\n")
        self.assertTrue(transport.disconnecting)


class LingeringTransport(StringTransport):
    """
    A transport that, like TLS waiting for its close_notify exchange, is
    not yet disconnecting right after loseConnection, so bytes keep coming.
    """

    def loseConnection(self):
        self.lose_called = True


class BadRequestTests(TestCase):
    def test_nothing_is_parsed_after_a_bad_request(self):
        recorder = Recorder()
        site = ProxySite(
            recorder, reactor=MemoryReactorClock(), settings=ServerSettings()
        )
        channel = site.buildProtocol(None)
        transport = LingeringTransport(
            peerAddress=IPv4Address("TCP", "192.0.2.1", 4321)
        )
        channel.makeConnection(transport)
        # An HTTP/2 preface sent to an HTTP/1.1 listener, then frames.
        channel.dataReceived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        channel.dataReceived(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\r\n\r\n")
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 505 "), answer)
        self.assertEqual(answer.count(b"HTTP/1.1"), 1)
        self.assertIn(b"\r\nConnection: close\r\n", answer)
        self.assertTrue(transport.lose_called)
        self.assertEqual(recorder.requests, [])


class HeldWritesTests(TestCase):
    """
    L{ProxyChannel.holdWrites}: what the proxy writes while the backend's
    read is parsed goes out in one piece and in order.
    """

    def test_held_writes_go_out_together_on_release(self):
        channel, transport = connect(Recorder())
        channel.holdWrites()
        channel.writeSequence([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n"])
        channel.write(b"ok")
        self.assertEqual(transport.value(), b"")
        channel.releaseWrites()
        self.assertEqual(
            transport.value(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        channel.write(b"more")
        self.assertTrue(transport.value().endswith(b"okmore"))

    def test_twisted_response_heads_keep_their_place(self):
        # An answer the proxy makes itself (an error page, for a pipelined
        # request) comes after what is held, not before.
        channel, transport = connect(Recorder())
        channel.holdWrites()
        channel.write(b"first response;")
        headers = Headers({b"Content-Length": [b"0"]})
        channel.writeHeaders(b"HTTP/1.1", b"404", b"Not Found", headers)
        channel.releaseWrites()
        self.assertEqual(
            transport.value(),
            b"first response;HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        )

    def test_closing_sends_what_is_held_first(self):
        channel, transport = connect(Recorder())
        channel.holdWrites()
        channel.write(b"last response")
        channel.loseConnection()
        self.assertEqual(transport.value(), b"last response")
        self.assertTrue(transport.disconnecting)

    def test_a_refusal_comes_after_what_is_held(self):
        # A malformed request pipelined behind one whose response is held
        # is refused from within that response's end: the client must get
        # the response first (RFC 9112 section 9.3.2).
        channel, transport = connect(Recorder())
        channel.holdWrites()
        channel.write(b"first response;")
        channel.reject(400)
        self.assertTrue(transport.value().startswith(b"first response;HTTP/1.1 400 "))
        self.assertTrue(transport.disconnecting)


class IdleConnectionStateTests(TestCase):
    """
    What an idle keep-alive connection keeps: a proxy holds thousands, so
    what is the same for all of them is the site's, and nothing of the
    last request stays.
    """

    def test_connections_to_one_address_share_it_and_its_port(self):
        site = ProxySite(Recorder(), reactor=MemoryReactorClock(), settings=ServerSettings())
        channels = []
        for client_port in (4321, 4322):
            channel = site.buildProtocol(None)
            channel.makeConnection(
                StringTransport(
                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
                    peerAddress=IPv4Address("TCP", "192.0.2.1", client_port),
                )
            )
            channels.append(channel)
        first, second = channels
        self.assertEqual(first.getHost(), IPv4Address("TCP", "127.0.0.1", 8080))
        self.assertEqual(first.local_port, b"8080")
        self.assertIs(first.getHost(), second.getHost())
        self.assertIs(first.local_port, second.local_port)
        self.assertEqual(second.getPeer().port, 4322)

    def test_channel_schedules_and_makes_requests_with_its_sites(self):
        channel, _ = connect(Recorder())
        site = channel.site
        self.assertEqual(channel.callLater, site.reactor.callLater)
        self.assertIs(channel.requestFactory, site.requestFactory)
        self.assertNotIn("callLater", vars(channel))
        self.assertNotIn("requestFactory", vars(channel))

    def test_idle_connection_keeps_nothing_of_its_last_request(self):
        recorder = Recorder()
        channel, transport = connect(recorder)
        channel.dataReceived(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        recorder.requests[0].finish()
        self.assertEqual(channel.requests, [])
        self.assertTrue(channel.isIdle())
        self.assertEqual(channel._reader.buffered(), 0)
        self.assertIsNone(channel._reader._requestLine)
        self.assertEqual(channel._reader._fields, [])
        self.assertIsNone(channel._bodyRequest)
        self.assertIsNone(channel._bodyHead)
        self.assertIsNone(channel._decoder)


class RequestConstructionTests(TestCase):
    def test_request_of_the_channel_has_the_state_twisted_gives_one(self):
        channel, _ = connect(Recorder())
        made = channel.site.requestFactory(channel)
        twisteds = channel.site.requestFactory(channel, queued=False)
        self.assertEqual(sorted(vars(made)), sorted(vars(twisteds)))
        for name, value in vars(twisteds).items():
            if name not in ("requestHeaders", "responseHeaders"):
                self.assertEqual(getattr(made, name), value, name)
        self.assertEqual(list(made.requestHeaders.getAllRawHeaders()), [])
        self.assertEqual(list(made.responseHeaders.getAllRawHeaders()), [])

    def test_request_fields_are_looked_up_by_any_spelling(self):
        channel, _ = connect(Recorder())
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nhost: a\r\nX-Rare-Name-1234: 1\r\nX-Empty:\r\n\r\n"
        )
        fields = channel.requests[0].requestHeaders
        self.assertEqual(fields.getRawHeaders(b"Host"), [b"a"])
        self.assertEqual(fields.getRawHeaders(b"HOST"), [b"a"])
        self.assertEqual(fields.getRawHeaders("host"), ["a"])
        self.assertEqual(fields.getRawHeaders(b"x-rare-name-1234"), [b"1"])
        self.assertEqual(fields.getRawHeaders(b"X-Empty"), [b""])
        self.assertIsNone(fields.getRawHeaders(b"accept"))
        self.assertEqual(fields.getRawHeaders(b"accept", [b"*/*"]), [b"*/*"])
        fields.setRawHeaders(b"accept", [])
        self.assertEqual(fields.getRawHeaders(b"accept", 0), 0)
        self.assertTrue(fields.hasHeader(b"host"))
        self.assertTrue(fields.hasHeader("X-RARE-NAME-1234"))
        self.assertFalse(fields.hasHeader(b"x-other-never-seen"))
