"""
Tests of L{txrevproxy.upstream.h2pool} and L{txrevproxy.upstream.h2connection}:
the HTTP/2 client of backend connections, against an C{h2} server
connection in memory.
"""

from __future__ import annotations

from typing import List

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txrevproxy.forward.causes import failure_cause
from txrevproxy.upstream.h2connection import (
    CLOSED,
    STREAM_WINDOW,
    UPLOAD_BUFFER,
    NoHTTP2,
    NotProcessed,
    StreamReset,
)
from txrevproxy.upstream.h2pool import H2ConnectionPool

from ..support.exchanges import RecordingExchange

HEAD = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"backend"),
    (b":path", b"/"),
]


class MemoryEndpoint:
    """
    Connects each protocol to a L{StringTransport} at once.
    """

    def __init__(self) -> None:
        self.transports: List[StringTransport] = []

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.transports.append(transport)
        return succeed(protocol)


class Backend:
    """
    The server side of one connection: an C{h2} server fed with what the
    proxy wrote, whose answers are fed back.
    """

    def __init__(self, transport: StringTransport, protocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.events: list = []

    def read(self) -> list:
        data = self.transport.value()
        self.transport.clear()
        events = self.conn.receive_data(data)
        self.events += events
        return events

    def send(self) -> None:
        self.protocol.dataReceived(self.conn.data_to_send())


class PoolCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.endpoint = MemoryEndpoint()
        self.pool = H2ConnectionPool(
            self.clock, self.endpoint, "http://backend", 30.0, 10, b"http"
        )

    def open(self, exchange=None, body=None):
        """
        A stream with the request head sent, on a new connection or one
        with room.
        """
        stream = self.pool.take_idle()
        if stream is None:
            stream = self.successResultOf(self.pool.connect())
        stream.sendHead(exchange or RecordingExchange(), HEAD, False, body)
        return stream

    def backend(self, index=0) -> Backend:
        stream_holder = self.pool._connections[index]
        backend = Backend(self.endpoint.transports[index], stream_holder)
        backend.read()
        backend.send()
        return backend


class H2PoolTests(PoolCase):
    def test_requests_share_a_connection_up_to_max_streams(self):
        self.pool = H2ConnectionPool(
            self.clock, self.endpoint, "http://backend", 30.0, 2, b"http"
        )
        first, second, third = self.open(), self.open(), self.open()
        self.assertIs(first.connection, second.connection)
        self.assertIsNot(third.connection, first.connection)
        self.assertEqual(len(self.endpoint.transports), 2)

    def test_response_head_body_and_trailers_reach_the_exchange(self):
        exchange = RecordingExchange()
        stream = self.open(exchange)
        backend = self.backend()
        backend.conn.send_headers(
            1, [(b":status", b"200"), (b"content-length", b"2"), (b"x-a", b"b")]
        )
        backend.conn.send_data(1, b"ok")
        backend.conn.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
        backend.send()
        self.assertEqual(
            exchange.events,
            [
                "started",
                ("head", 200, 2),
                ("body", b"ok"),
                ("trailers", [(b"grpc-status", b"0")]),
                "end",
            ],
        )
        self.assertIs(stream.state, CLOSED)
        self.assertEqual(exchange.held, exchange.released)
        # The connection stays, idle, for the next request.
        self.assertIs(self.open().connection, stream.connection)

    def test_a_paused_stream_keeps_its_window_closed_until_resumed(self):
        stream = self.open()
        backend = self.backend()
        backend.conn.send_headers(1, [(b":status", b"200")])
        stream.transport.pauseProducing()
        half = STREAM_WINDOW // 2
        for _ in range(half // 16384):
            backend.conn.send_data(1, b"x" * 16384)
        backend.send()
        backend.read()
        self.assertEqual(backend.conn.local_flow_control_window(1), half)
        stream.transport.resumeProducing()
        backend.read()
        self.assertEqual(backend.conn.local_flow_control_window(1), STREAM_WINDOW)

    def test_a_stream_that_ends_or_is_reset_while_paused_gives_its_window_back(self):
        """
        The bytes a paused stream was sent count against the connection's
        window too: a stream that ends, or is reset, before it is resumed
        gives them back, or each slow client's response would close the
        connection's window a little more until no stream could be sent
        anything.  (One stream a connection: a window of two streams',
        which C{h2} updates once half of it was taken.)
        """
        self.pool = H2ConnectionPool(
            self.clock, self.endpoint, "http://backend", 30.0, 1, b"http"
        )
        backend = None
        for stream_id in (1, 3):
            stream = self.open()
            if backend is None:
                backend = self.backend()
                window = backend.conn.outbound_flow_control_window
            backend.read()
            stream.transport.pauseProducing()
            backend.conn.send_headers(stream_id, [(b":status", b"200")])
            for _ in range(STREAM_WINDOW // 16384):
                backend.conn.send_data(stream_id, b"x" * 16384)
            if stream_id == 1:
                backend.conn.end_stream(stream_id)
            else:
                backend.conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            backend.send()
            self.assertIs(stream.state, CLOSED)
            backend.read()
            self.assertEqual(backend.conn.outbound_flow_control_window, window)

    def test_the_connection_window_holds_every_stream_window(self):
        self.open()
        backend = self.backend()
        self.assertGreaterEqual(
            backend.conn.outbound_flow_control_window, 10 * STREAM_WINDOW
        )

    def test_upload_waits_for_the_window_and_pauses_the_client(self):
        stream = self.open(body=b"chunked")
        backend = self.backend()
        backend.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
        backend.send()
        backend.read()

        class Producer:
            paused = False

            def pauseProducing(self):
                self.paused = True

            def resumeProducing(self):
                self.paused = False

        producer = Producer()
        stream.transport.registerProducer(producer, True)
        stream.sendBody(b"u" * (UPLOAD_BUFFER + 5000))
        stream.finishBody()
        received = [e for e in backend.read() if isinstance(e, h2.events.DataReceived)]
        self.assertEqual(sum(len(e.data) for e in received), 1000)
        self.assertTrue(producer.paused)
        backend.conn.increment_flow_control_window(10**6, 1)
        backend.conn.increment_flow_control_window(10**6)
        backend.send()
        events = backend.read()
        received = [e for e in events if isinstance(e, h2.events.DataReceived)]
        self.assertEqual(sum(len(e.data) for e in received), UPLOAD_BUFFER + 4000)
        self.assertTrue(any(isinstance(e, h2.events.StreamEnded) for e in events))
        self.assertFalse(producer.paused)

    def test_goaway_fails_the_streams_it_did_not_process_as_retryable(self):
        first, second = RecordingExchange(), RecordingExchange()
        one = self.open(first)
        two = self.open(second)
        backend = self.backend()
        # The frame alone: C{h2} sends nothing more after its own GOAWAY.
        self.pool._connections[0].dataReceived(
            GoAwayFrame(0, last_stream_id=1, error_code=0).serialize()
        )
        self.assertEqual(second.events, [("failed", NotProcessed)])
        self.assertTrue(two.reused)
        self.assertEqual(first.events, [])
        # No new stream goes on that connection.
        self.assertIsNone(self.pool.take_idle())
        backend.conn.send_headers(1, [(b":status", b"204")], end_stream=True)
        backend.send()
        self.assertEqual(first.events, ["started", ("head", 204, None), "end"])
        self.assertTrue(self.endpoint.transports[0].disconnecting)
        self.assertIs(one.state, CLOSED)

    def test_a_refused_stream_is_retryable_and_a_reset_one_is_not(self):
        refused, reset = RecordingExchange(), RecordingExchange()
        one = self.open(refused)
        two = self.open(reset)
        backend = self.backend()
        backend.conn.reset_stream(1, ErrorCodes.REFUSED_STREAM)
        backend.conn.reset_stream(3, ErrorCodes.INTERNAL_ERROR)
        backend.send()
        self.assertEqual(refused.events, [("failed", NotProcessed)])
        self.assertEqual(reset.events, [("failed", StreamReset)])
        self.assertTrue(one.reused)
        self.assertIs(two.state, CLOSED)

    def test_a_window_opened_before_a_reset_in_one_read_sends_nothing_on_it(self):
        """
        C{h2} has taken the whole read in when the connection's window
        update reaches the stream's held upload: the stream is reset
        already, and only it fails; the connection and its other streams
        go on.
        """
        reset, other = RecordingExchange(), RecordingExchange()
        one = self.open(reset, body=b"chunked")
        self.open(other)
        backend = self.backend()
        backend.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10**6})
        backend.send()
        backend.read()
        # The connection's window (65,535 bytes) is what holds the rest.
        one.sendBody(b"u" * 70000)
        backend.read()
        backend.conn.increment_flow_control_window(1000)
        backend.conn.reset_stream(1, ErrorCodes.INTERNAL_ERROR)
        backend.send()
        self.assertEqual(reset.events, [("failed", StreamReset)])
        self.assertFalse(self.endpoint.transports[0].disconnecting)
        backend.conn.send_headers(3, [(b":status", b"204")], end_stream=True)
        backend.send()
        self.assertEqual(other.events, ["started", ("head", 204, None), "end"])

    def test_a_response_that_ends_before_the_upload_resets_the_stream(self):
        """
        The backend answered whole before the request body did: the rest
        of the body is not wanted (RST_STREAM CANCEL), and the exchange
        hears of the end.
        """
        exchange = RecordingExchange()
        stream = self.open(exchange, body=b"chunked")
        stream.sendBody(b"part")
        backend = self.backend()
        backend.conn.send_headers(1, [(b":status", b"413")], end_stream=True)
        backend.send()
        self.assertEqual(exchange.events, ["started", ("head", 413, None), "end"])
        self.assertIs(stream.state, CLOSED)
        resets = [e for e in backend.read() if isinstance(e, h2.events.StreamReset)]
        self.assertEqual([(e.stream_id, e.error_code) for e in resets], [(1, ErrorCodes.CANCEL)])

    def test_data_on_a_stream_given_up_gives_its_window_back(self):
        """
        What the backend sent on a stream before it read this side's reset
        still counts against the connection's window: it is given back.
        """
        self.pool = H2ConnectionPool(
            self.clock, self.endpoint, "http://backend", 30.0, 1, b"http"
        )
        stream = self.open()
        backend = self.backend()
        window = backend.conn.outbound_flow_control_window
        backend.conn.send_headers(1, [(b":status", b"200")])
        backend.send()
        stream.abort()
        for _ in range(STREAM_WINDOW // 16384):
            backend.conn.send_data(1, b"x" * 16384)
        backend.send()
        backend.read()
        self.assertEqual(backend.conn.outbound_flow_control_window, window)

    def test_an_aborted_stream_is_reset_and_frees_its_place(self):
        stream = self.open()
        backend = self.backend()
        stream.abort()
        events = backend.read()
        self.assertEqual(
            [(e.stream_id, e.error_code) for e in events if isinstance(e, h2.events.StreamReset)],
            [(1, ErrorCodes.CANCEL)],
        )
        self.assertEqual(self.pool._streams, set())

    def test_a_tls_handshake_without_h2_fails_the_streams(self):
        exchange = RecordingExchange()
        stream = self.open(exchange)
        connection = stream.connection
        connection._check_alpn = True
        connection.transport.negotiatedProtocol = None
        connection.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        self.assertTrue(self.endpoint.transports[0].disconnecting)
        connection.connectionLost(None)
        self.assertEqual(exchange.events, [("failed", NoHTTP2)])

    def test_idle_connections_close_after_the_idle_timeout(self):
        self.open().abort()
        self.clock.advance(29)
        self.assertFalse(self.endpoint.transports[0].disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.endpoint.transports[0].disconnecting)

    def test_idle_connections_close_each_after_its_own_idle_timeout(self):
        self.pool = H2ConnectionPool(
            self.clock, self.endpoint, "http://backend", 30.0, 1, b"http"
        )
        first, second = self.open(), self.open()
        first.abort()
        self.clock.advance(10)
        second.abort()
        self.clock.advance(20)
        self.assertEqual(
            [transport.disconnecting for transport in self.endpoint.transports],
            [True, False],
        )
        self.clock.advance(10)
        self.assertTrue(self.endpoint.transports[1].disconnecting)

    def test_a_response_timeout_tells_the_exchange(self):
        exchange = RecordingExchange()
        stream = self.open(exchange)
        stream.awaitResponse(self.clock, 5)
        self.clock.advance(5)
        self.assertEqual(exchange.events, ["timed out"])

    def test_a_failed_connection_fails_every_request_waiting_for_it(self):
        self.endpoint.connect = lambda factory: fail(ConnectionRefusedError())
        first, second = self.pool.connect(), self.pool.connect()
        self.failureResultOf(first, ConnectionRefusedError)
        self.failureResultOf(second, ConnectionRefusedError)

    def test_a_burst_waits_for_one_connection(self):
        pending: List[Deferred] = []
        self.endpoint.connect = lambda factory: pending.append(Deferred()) or pending[-1]
        waiting = [self.pool.connect() for _ in range(10)]
        extra = self.pool.connect()
        self.assertEqual([w.called for w in waiting + [extra]], [False] * 11)
        self.assertEqual(len(pending), 2)
        connection = self.pool._factory.buildProtocol(None)
        connection.makeConnection(StringTransport())
        pending[0].callback(connection)
        streams = [self.successResultOf(w) for w in waiting]
        self.assertEqual({s.connection for s in streams}, {connection})
        # The eleventh went over max_streams: it waits for another one.
        self.assertFalse(extra.called)

    def test_a_shorter_route_connect_timeout_applies(self):
        self.pool.connect_timeout = 5.0
        self.endpoint.connect = lambda factory: Deferred()
        waiting = self.pool.connect(timeout=1.0)
        self.clock.advance(1.0)
        self.failureResultOf(waiting, ConnectTimeoutError)

    def test_a_connection_made_after_the_pool_closed_closes_after_its_streams(self):
        pending: List[Deferred] = []
        self.endpoint.connect = lambda factory: pending.append(Deferred()) or pending[-1]
        waiting = self.pool.connect()
        self.pool.close()
        transport = StringTransport()
        connection = self.pool._factory.buildProtocol(None)
        connection.makeConnection(transport)
        pending[0].callback(connection)
        stream = self.successResultOf(waiting)
        self.assertFalse(transport.disconnecting)
        self.assertIsNone(self.pool.take_idle())
        stream.abort()
        self.assertTrue(transport.disconnecting)

    def test_closing_the_pool_closes_busy_connections_when_their_streams_end(self):
        stream = self.open()
        backend = self.backend()
        self.pool.close()
        self.assertFalse(self.endpoint.transports[0].disconnecting)
        self.assertIsNone(self.pool.take_idle())
        backend.conn.send_headers(1, [(b":status", b"204")], end_stream=True)
        backend.send()
        self.assertIs(stream.state, CLOSED)
        self.assertTrue(self.endpoint.transports[0].disconnecting)
        events = backend.read()
        self.assertTrue(any(isinstance(e, h2.events.ConnectionTerminated) for e in events))


def test_http2_failures_have_their_error_log_causes():
    assert failure_cause(Failure(StreamReset(ErrorCodes.INTERNAL_ERROR))) == "reset"
    assert failure_cause(Failure(NotProcessed("went away"))) == "reset"
    assert failure_cause(Failure(NoHTTP2("no h2"))) == "bad_response"
    assert failure_cause(Failure(ProtocolError("bad frame"))) == "bad_response"
