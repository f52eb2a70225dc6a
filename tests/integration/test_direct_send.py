"""
Tests of L{txrevproxy.net.direct_send}: writes that go straight to a TCP
socket keep their order with the ones the transport queues, and other
transports keep their own C{write}.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from txrevproxy.net.direct_send import direct_writer

from ..support.loopback import listen


class Collect(Protocol):
    """
    Keeps what it receives; C{closed} fires with it when the connection
    closes.
    """

    def __init__(self) -> None:
        self.received = []
        self.closed = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(b"".join(self.received))


class Writer(Protocol):
    """
    Writes C{pieces} through a direct writer as soon as it connects, then
    closes the connection.
    """

    def __init__(self, pieces) -> None:
        self.pieces = pieces
        self.direct = None

    def connectionMade(self) -> None:
        write = direct_writer(self.transport)
        self.direct = write is not self.transport.write
        for piece in self.pieces:
            write(piece)
        self.transport.loseConnection()


def test_other_transports_keep_their_own_write():
    transport = StringTransport()
    assert direct_writer(transport) == transport.write


class DirectWriterTests(TestCase):
    """
    Over a real loopback connection.
    """

    @inlineCallbacks
    def exchange(self, pieces):
        writer = Writer(pieces)
        port = yield listen(Factory.forProtocol(lambda: writer), self)
        reader = Collect()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield endpoint.connect(Factory.forProtocol(lambda: reader))
        received = yield reader.closed
        self.assertTrue(writer.direct)
        return received

    @inlineCallbacks
    def test_small_writes_arrive_in_order(self):
        pieces = [b"HTTP/1.1 200 OK\r\n\r\n", b"hello", b"", b"world"]
        received = yield self.exchange(pieces)
        self.assertEqual(received, b"".join(pieces))

    @inlineCallbacks
    def test_what_the_socket_does_not_take_is_queued_in_order(self):
        # Far more than the socket buffers hold: the first write is sent in
        # part and queued in part, the later ones queue behind it.
        big = bytes(range(256)) * 40000
        pieces = [big, b"middle", big[::-1], b"end"]
        received = yield self.exchange(pieces)
        self.assertEqual(len(received), sum(map(len, pieces)))
        self.assertEqual(received, b"".join(pieces))
