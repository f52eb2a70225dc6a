"""
Tests for L{txrevproxy.net.read_size}.
"""

from __future__ import annotations

import socket

from twisted.internet import main, tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import TestCase

from txrevproxy.net import read_size
from txrevproxy.net.read_size import READ_SIZE, read_into_shared_buffer, set_read_size


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


class _Wrapper:
    """
    A protocol over a transport (TLS, the PROXY protocol): what the channel
    sees as its transport.
    """

    def __init__(self, transport) -> None:
        self.transport = transport


class _FailingSocket:
    def __init__(self, errno: int) -> None:
        self.errno = errno

    def recv_into(self, buffer, size):
        raise OSError(self.errno, "failed")


class SharedBufferReadTests(TestCase):
    """
    L{read_into_shared_buffer} does what Twisted's C{doRead} does.
    """

    def _connection(self):
        """
        A Twisted TCP connection over one end of a socket pair, and the
        other end.
        """
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        ours.setblocking(False)
        protocol = _Recorder()
        connection = tcp.Connection(ours, protocol, MemoryReactor())
        protocol.makeConnection(connection)
        return connection, protocol, theirs

    def test_the_bytes_that_came_are_delivered(self):
        connection, protocol, peer = self._connection()
        peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
        self.assertIsNone(read_into_shared_buffer(connection))
        self.assertEqual(protocol.received, [b"GET / HTTP/1.1\r\n\r\n"])

    def test_a_later_read_leaves_what_was_delivered_alone(self):
        """
        The buffer is shared and reused; what a protocol was given is a
        copy, which the next read (a shorter one) does not overwrite.
        """
        connection, protocol, peer = self._connection()
        peer.sendall(b"a" * 100)
        read_into_shared_buffer(connection)
        peer.sendall(b"b" * 10)
        read_into_shared_buffer(connection)
        self.assertEqual(protocol.received, [b"a" * 100, b"b" * 10])
        self.assertIsInstance(protocol.received[0], bytes)

    def test_a_read_takes_at_most_the_read_size(self):
        connection, protocol, peer = self._connection()
        peer.setblocking(False)
        sent = 0
        try:
            while sent < READ_SIZE + 1000:
                sent += peer.send(b"x" * (READ_SIZE + 1000 - sent))
        except BlockingIOError:
            self.skipTest("the socket pair buffers less than one read")
        read_into_shared_buffer(connection)
        self.assertEqual(len(protocol.received[0]), READ_SIZE)
        read_into_shared_buffer(connection)
        self.assertEqual(len(b"".join(protocol.received)), READ_SIZE + 1000)

    def test_nothing_to_read_is_no_event(self):
        connection, protocol, _ = self._connection()
        self.assertIsNone(read_into_shared_buffer(connection))
        self.assertEqual(protocol.received, [])

    def test_the_peer_closing_is_connection_done(self):
        connection, protocol, peer = self._connection()
        peer.close()
        self.assertIs(read_into_shared_buffer(connection), main.CONNECTION_DONE)
        self.assertEqual(protocol.received, [])

    def test_a_socket_error_is_connection_lost(self):
        connection, _, _ = self._connection()
        connection.socket = _FailingSocket(104)  # ECONNRESET
        self.assertIs(read_into_shared_buffer(connection), main.CONNECTION_LOST)


class SetReadSizeTests(TestCase):
    """
    L{set_read_size} finds the TCP connection under any wrapping.
    """

    def _connection(self):
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        ours.setblocking(False)
        return tcp.Connection(ours, _Recorder(), MemoryReactor()), theirs

    def test_the_connection_under_wrappers_reads_the_read_size(self):
        connection, _ = self._connection()
        connection.bufferSize = 1
        set_read_size(_Wrapper(_Wrapper(connection)))
        self.assertEqual(connection.bufferSize, READ_SIZE)

    def test_on_pypy_the_connection_reads_into_the_shared_buffer(self):
        self.patch(read_size, "SHARED_BUFFER_READS", True)
        connection, peer = self._connection()
        set_read_size(_Wrapper(connection))
        peer.sendall(b"hello")
        connection.doRead()
        self.assertEqual(connection.protocol.received, [b"hello"])
        self.assertEqual(connection.doRead.__func__, read_into_shared_buffer)

    def test_on_cpython_the_connection_keeps_twisteds_read(self):
        self.patch(read_size, "SHARED_BUFFER_READS", False)
        connection, _ = self._connection()
        set_read_size(connection)
        self.assertNotIn("doRead", vars(connection))

    def test_a_transport_that_is_not_tcp_is_left_alone(self):
        transport = _Wrapper(None)
        set_read_size(transport)
        self.assertFalse(hasattr(transport, "bufferSize"))
