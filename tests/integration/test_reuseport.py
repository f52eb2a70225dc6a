"""
Tests of L{txrevproxy.net.reuseport}: a TCP listener opened for several
workers is a group of sockets on one address, among which the kernel
spreads the connections; a UNIX listener stays one shared socket.
"""

from __future__ import annotations

import select
import socket

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import listen_now
from txrevproxy.net.reuseport import listen_group


class ListenGroupTests(TestCase):
    def group(self, description: str, count: int):
        ports = listen_group(
            reactor, lambda r: listen_now(r, description, Factory(), "listeners.x.endpoint"), count
        )
        for port in ports:
            # Nothing accepts: the connections wait in each socket's queue.
            port.stopReading()
            self.addCleanup(port.stopListening)
        return ports

    def test_tcp_listener_is_one_socket_per_worker_on_one_address(self):
        ports = self.group("tcp:0:interface=127.0.0.1", 3)
        self.assertEqual(len({port.fileno() for port in ports}), 3)
        self.assertEqual(len({port.getHost() for port in ports}), 1)
        for port in ports:
            self.assertTrue(port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))

    def test_connections_are_spread_over_the_sockets(self):
        ports = self.group("tcp:0:interface=127.0.0.1", 2)
        address = ("127.0.0.1", ports[0].getHost().port)
        clients = [socket.create_connection(address) for _ in range(64)]
        self.addCleanup(lambda: [client.close() for client in clients])
        readable, _, _ = select.select([port.socket for port in ports], [], [], 5)
        # Each socket has connections waiting (all 64 hashed to one of
        # the two would be a chance of one in 2 ** 63).
        self.assertEqual(len(readable), 2)

    def test_unix_listener_is_one_shared_socket(self):
        ports = self.group("unix:%s" % (self.mktemp(),), 3)
        self.assertEqual(len(ports), 1)
