"""
Tests for the states of L{txrevproxy.server.channel.ProxyChannel}, and for
the answer it writes when it gives up on a head
(L{txrevproxy.server.answers.connection_answer}).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import ServerSettings
from txrevproxy.http.headers import http_date
from txrevproxy.http.status import reason_phrase
from txrevproxy.server import channel as states
from txrevproxy.server.answers import connection_answer, respond_with_error

from ..support.channels import connect

#: What the channel may never set on itself: the methods it dispatches
#: through its state.
_METHODS = ("dataReceived", "lineReceived", "rawDataReceived", "connectionLost", "write")


class _Recording(Protocol):
    def __init__(self) -> None:
        self.received = []
        self.lost = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason=None) -> None:
        self.lost.append(reason)


class ChannelStateTests(TestCase):
    def assertNoMethodOnInstance(self, channel) -> None:
        self.assertEqual([name for name in _METHODS if name in vars(channel)], [])

    def test_a_new_connection_is_idle(self):
        _, _, channel, _ = connect(ServerSettings())
        self.assertIs(channel.state, states.IDLE)
        self.assertTrue(channel.isIdle())
        self.assertIsNone(channel.headStarted)

    def test_first_byte_of_a_head_starts_reading_it(self):
        clock, _, channel, _ = connect(ServerSettings())
        clock.advance(5)
        channel.dataReceived(b"GET / HT")
        self.assertIs(channel.state, states.READING_HEAD)
        self.assertEqual(channel.headStarted, 5)
        self.assertFalse(channel.isIdle())

    def test_request_without_body_is_responding_then_idle(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIs(channel.state, states.RESPONDING)
        self.assertIsNone(channel.headStarted)
        request = site.resource.requests[0]
        request.finish()
        self.assertIs(channel.state, states.IDLE)
        self.assertTrue(channel.isIdle())

    def test_request_with_body_is_read_then_responding(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
        self.assertIs(channel.state, states.READING_BODY)
        self.assertEqual(site.resource.events, [("body", b"ab")])
        channel.dataReceived(b"cd")
        self.assertIs(channel.state, states.RESPONDING)

    def test_pipelined_request_waits_then_is_read(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        self.assertEqual([r.uri for r in site.resource.requests], [b"/1"])
        site.resource.requests[0].finish()
        self.assertEqual([r.uri for r in site.resource.requests], [b"/1", b"/2"])
        self.assertIs(channel.state, states.RESPONDING)

    def test_reading_pauses_once_16_KiB_wait_behind_a_request(self):
        # Pipelined bytes are held unread while a response is made; past
        # 16 KiB the client is not read any more, until that response ends
        # and what is held is back under 16 KiB.
        _, site, channel, transport = connect(ServerSettings(), producer=True)
        channel.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        waiting = b"GET /2 HTTP/1.1\r\nHost: a\r\nX-Pad: %s\r\n\r\n" % (b"x" * 3000,)
        waiting += b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" * 500
        channel.dataReceived(waiting[:16384])
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(waiting[16384:])
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual([r.uri for r in site.resource.requests], [b"/1"])
        site.resource.requests[0].finish()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual([r.uri for r in site.resource.requests], [b"/1", b"/2"])
        self.assertIs(channel.state, states.RESPONDING)

    def test_response_that_closes_leads_to_closing(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        site.resource.requests[0].finish()
        self.assertIs(channel.state, states.CLOSING)
        self.assertTrue(transport.disconnecting)

    def test_rejected_connection_drops_what_follows(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nBad\x01: x\r\n\r\n")
        self.assertIs(channel.state, states.CLOSING)
        written = transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(transport.value(), written)
        self.assertEqual(site.resource.requests, [])
        self.assertNoMethodOnInstance(channel)

    def test_field_line_is_checked_as_it_arrives(self):
        # A bad field line is answered as soon as it ends, before the head.
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nBad Name: x\r\n")
        self.assertIs(channel.state, states.CLOSING)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "))
        # Good ones make the request once the head is whole.
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n")
        self.assertIs(channel.state, states.READING_HEAD)
        channel.dataReceived(b"Accept: */*\r\n\r\n")
        [request] = site.resource.requests
        self.assertEqual(request.requestHeaders.getRawHeaders(b"host"), [b"a"])
        self.assertEqual(request.requestHeaders.getRawHeaders(b"accept"), [b"*/*"])
        self.assertIs(channel.state, states.RESPONDING)

    def test_field_name_twisted_refuses_is_answered_400_wherever_it_stands(self):
        for head in (
            b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        ):
            _, site, channel, transport = connect(ServerSettings())
            channel.dataReceived(head)
            self.assertIs(channel.state, states.CLOSING)
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "))
            self.assertEqual(site.resource.requests, [])

    def test_rejected_request_that_has_an_id_is_answered_with_it(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n"
        )
        [request] = site.resource.requests
        self.assertIs(channel.state, states.READING_BODY)
        channel.dataReceived(b"zz\r\n")
        written = transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertIn(b"\r\nX-Request-ID: %s\r\n" % (request.request_id,), written)

    def test_own_answers_spell_field_names_as_the_connection_answers_do(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        [request] = site.resource.requests
        request.responseHeaders.setRawHeaders(b"ratelimit-policy", [b'"p";q=1'])
        respond_with_error(request, 429)
        head = transport.value().partition(b"\r\n\r\n")[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"))
        self.assertIn(b"\r\nX-Request-ID: %s\r\n" % (request.request_id,), head)
        self.assertIn(b'\r\nRateLimit-Policy: "p";q=1\r\n', head)

    def test_proxy_protocol_connection_awaits_its_peer(self):
        _, site, _, _ = connect(ServerSettings())
        # The site of a listener behind the PROXY protocol.
        site.proxy_protocol = True
        channel = site.buildProtocol(None)
        channel.makeConnection(
            StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
        )
        self.assertIs(channel.state, states.AWAITING_PEER)
        self.assertTrue(channel.isIdle())
        channel.dataReceived(b"GET")
        self.assertIs(channel.state, states.READING_HEAD)
        self.assertEqual(channel.client_ip, b"192.0.2.1")

    def test_switched_channel_hands_bytes_and_loss_to_its_protocol(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        protocol = _Recording()
        channel.switchProtocol(protocol)
        self.assertIs(channel.state, states.UPGRADED)
        self.assertNotIn(channel, site.channels)
        channel.dataReceived(b"frame")
        self.assertEqual(protocol.received, [b"frame"])
        channel.connectionLost(None)
        self.assertEqual(protocol.lost, [None])
        self.assertNoMethodOnInstance(channel)

    def test_bodyless_response_writes_no_body(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
        request = site.resource.requests[0]
        request.writeResponseHead(200, b"OK", [(b"Content-Length", b"5")], 5)
        head = transport.value()
        request.write(b"hello")
        request.finish()
        self.assertEqual(transport.value(), head)
        self.assertNotIn("write", vars(request))


class ConnectionAnswerTests(TestCase):
    def test_bytes_are_those_the_channel_wrote_before(self):
        body = b"408 %s\nrequest id: 0123456789abcdef\n" % (reason_phrase(408),)
        self.assertEqual(
            connection_answer(408, b"0123456789abcdef", 0.0, None),
            b"HTTP/1.1 408 %s\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"X-Request-ID: 0123456789abcdef\r\n"
            b"Date: %s\r\n"
            b"Connection: close\r\n\r\n%s"
            % (reason_phrase(408), len(body), http_date(0.0), body),
        )

    def test_listener_with_hsts_says_so(self):
        answer = connection_answer(400, b"0123456789abcdef", 0.0, b"max-age=60")
        self.assertIn(b"\r\nStrict-Transport-Security: max-age=60\r\n", answer)
