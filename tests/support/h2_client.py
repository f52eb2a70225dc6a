"""
A small HTTP/2 client for the tests, on the C{h2} package over a real TLS
connection (or a cleartext one, h2c with prior knowledge): several
requests at once on one connection, request bodies sent as the
flow-control window allows, and every stream's outcome (a whole response,
or a reset) recorded, and the server's GOAWAYs.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import attr
import h2.config
import h2.connection
import h2.errors
import h2.events
from h2.connection import ConnectionInputs, H2ConnectionStateMachine
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from .tls_clients import ProbingClientTLS


@attr.s(auto_attribs=True)
class H2Response:
    """
    What came back on one stream.

    @ivar reset: the RST_STREAM error code when the stream was reset
        instead of ended, else L{None}.
    @ivar trailers: the trailer fields that ended the stream, if any.
    """

    status: int = 0
    headers: List[Tuple[bytes, bytes]] = attr.Factory(list)
    body: bytes = b""
    reset: Optional[int] = None
    trailers: List[Tuple[bytes, bytes]] = attr.Factory(list)

    def header(self, name: bytes) -> Optional[bytes]:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class GracefulGoAwayStateMachine(H2ConnectionStateMachine):
    """
    C{h2}'s connection states, except that a GOAWAY the server sends does
    not end the connection: the streams up to its last ID go on (RFC 9113
    section 6.8), as curl and browsers have them, and the client closes
    the connection itself after a GOAWAY with an error.
    """

    def process_input(self, input_):
        if input_ is ConnectionInputs.RECV_GOAWAY:
            return []
        return super().process_input(input_)


@implementer(IHandshakeListener)
class H2Client(Protocol):
    """
    An HTTP/2 connection; L{request} starts a stream.

    @param validate: check and normalise the fields it sends, as
        C{h2} does by default; without, it sends what a test gives it.
    @ivar handshake: fires with this client once TLS is up.
    @ivar closed: fires when the connection is gone.
    @ivar terminated: the GOAWAY error code, once the server sent one.
    @ivar reading: whether response bytes are taken as they come; while
        not, the streams' windows stay closed on what arrived (the
        connection's is opened again), as a client that stopped reading
        some responses does.  L{read} starts again.
    @ivar goaways: the last stream ID of each GOAWAY the server sent.
    @ivar goaway: fires with the first GOAWAY's last stream ID.
    """

    reading = True

    def __init__(self, validate: bool = True) -> None:
        self.goaways: List[int] = []
        self.goaway: Deferred = Deferred()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=validate,
                normalize_outbound_headers=validate,
            )
        )
        self.conn.state_machine = GracefulGoAwayStateMachine()
        self.terminated: Optional[int] = None
        self.scheme = b"https"
        self.handshake: Deferred = Deferred()
        self.closed: Deferred = Deferred()
        self._responses: Dict[int, H2Response] = {}
        self._waiting: Dict[int, Deferred] = {}
        self._unsent: Dict[int, List] = {}
        self._unread: List[Tuple[int, int]] = []

    def handshakeCompleted(self) -> None:
        # The preface goes first: bytes written before the handshake is
        # over are sent after those written from this callback.
        self.conn.initiate_connection()
        self._flush()
        self.handshake.callback(self)

    def connectionMade(self) -> None:
        if not ISSLTransport.providedBy(self.transport):
            # h2c with prior knowledge: no handshake.
            self.handshakeCompleted()

    def request(
        self,
        method: bytes,
        path: bytes,
        headers: Sequence[Tuple[bytes, bytes]] = (),
        body: Optional[bytes] = None,
        authority: bytes = b"localhost",
    ) -> Deferred:
        """
        Send a request; fire with its L{H2Response} when the stream ends or
        is reset.
        """
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream_id,
            [
                (b":method", method),
                (b":scheme", self.scheme),
                (b":authority", authority),
                (b":path", path),
                *headers,
            ],
            end_stream=body is None,
        )
        self._responses[stream_id] = H2Response()
        self._waiting[stream_id] = Deferred()
        if body is not None:
            self._unsent[stream_id] = [body]
            self._sendBodies()
        self._flush()
        return self._waiting[stream_id]

    def _sendBodies(self) -> None:
        for stream_id, unsent in list(self._unsent.items()):
            stream = self.conn.streams.get(stream_id)
            if stream is None or stream.closed:
                # Answered and reset by the server already (its events may
                # not be read yet): the rest of the upload is not sent.
                del self._unsent[stream_id]
                continue
            data = unsent[0]
            while data:
                size = min(
                    self.conn.local_flow_control_window(stream_id),
                    self.conn.max_outbound_frame_size,
                    len(data),
                )
                if size <= 0:
                    break
                self.conn.send_data(stream_id, data[:size])
                data = data[size:]
            unsent[0] = data
            if not data:
                self.conn.end_stream(stream_id)
                del self._unsent[stream_id]

    def dataReceived(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                response = self._responses[event.stream_id]
                for name, value in event.headers:
                    if name == b":status":
                        response.status = int(value)
                    else:
                        response.headers.append((name, value))
            elif isinstance(event, h2.events.DataReceived):
                self._responses[event.stream_id].body += event.data
                if self.reading:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                else:
                    self._unread.append((event.stream_id, event.flow_controlled_length))
                    self.conn.increment_flow_control_window(
                        event.flow_controlled_length
                    )
            elif isinstance(event, h2.events.TrailersReceived):
                self._responses[event.stream_id].trailers.extend(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                self._done(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                response = self._responses.get(event.stream_id)
                if response is None:
                    # RST_STREAM(NO_ERROR) after a complete response: the
                    # server wants no more of the upload (RFC 9113 8.1).
                    continue
                response.reset = event.error_code
                self._unsent.pop(event.stream_id, None)
                self._done(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                self._sendBodies()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event.error_code
                self.goaways.append(event.last_stream_id)
                if not self.goaway.called:
                    self.goaway.callback(event.last_stream_id)
                if event.error_code != h2.errors.ErrorCodes.NO_ERROR:
                    # As a real client does: nothing more can come.
                    self.transport.loseConnection()
        self._flush()

    def read(self) -> None:
        """
        Take the response bytes again, opening the stream windows kept
        closed while not L{reading}.
        """
        self.reading = True
        unread, self._unread = self._unread, []
        for stream_id, size in unread:
            if stream_id in self.conn.streams:
                self.conn.increment_flow_control_window(size, stream_id)
        self._flush()

    def _done(self, stream_id: int) -> None:
        waiting = self._waiting.pop(stream_id, None)
        if waiting is not None:
            waiting.callback(self._responses.pop(stream_id))

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def connectionLost(self, reason=None) -> None:
        if not self.handshake.called:
            self.handshake.errback(reason)
        for waiting in self._waiting.values():
            waiting.errback(reason)
        self._waiting = {}
        self.closed.callback(None)


def connect_h2(
    port: int, server_name: str = "localhost", validate: bool = True
) -> Deferred:
    """
    Connect an L{H2Client} to 127.0.0.1:port, offering only C{h2}.

    @param validate: see L{H2Client}.
    @return: a Deferred firing with the client once TLS is up.
    """
    client = H2Client(validate)
    creator = ProbingClientTLS(server_name, alpn=[b"h2"])
    factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(lambda: client))
    d = TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    d.addCallback(lambda _: client.handshake)
    return d


def connect_h2c(port: int, validate: bool = True) -> Deferred:
    """
    Connect an L{H2Client} to 127.0.0.1:port in cleartext, with prior
    knowledge (the preface first, RFC 9113 section 3.3).

    @return: a Deferred firing with the client once its preface is sent.
    """
    client = H2Client(validate)
    client.scheme = b"http"
    d = TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
        Factory.forProtocol(lambda: client)
    )
    d.addCallback(lambda _: client.handshake)
    return d
