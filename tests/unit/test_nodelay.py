"""
Tests for L{txrevproxy.net.nodelay}.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import TestCase

from txrevproxy.net.nodelay import accept_without_delay


class _Port:
    def __init__(self, listening) -> None:
        self.socket = listening


class AcceptWithoutDelayTests(TestCase):
    def _socket(self, family, kind=socket.SOCK_STREAM):
        made = socket.socket(family, kind)
        self.addCleanup(made.close)
        return made

    def test_a_tcp_listening_socket_gets_tcp_nodelay(self):
        listening = self._socket(socket.AF_INET)
        accept_without_delay(_Port(listening))
        self.assertEqual(listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)

    def test_an_ipv6_listening_socket_gets_tcp_nodelay(self):
        try:
            listening = self._socket(socket.AF_INET6)
        except OSError:
            self.skipTest("no IPv6 sockets here")
        accept_without_delay(_Port(listening))
        self.assertEqual(listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)

    def test_a_unix_socket_is_left_alone(self):
        """
        A UNIX socket has no TCP options: setting one would raise.
        """
        accept_without_delay(_Port(self._socket(socket.AF_UNIX)))

    def test_a_port_without_a_socket_is_left_alone(self):
        accept_without_delay(object())
