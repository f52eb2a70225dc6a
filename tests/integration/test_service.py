"""
Tests for L{txrevproxy.app.service}: listening, refusing to start on a busy
port with a sentence, and stopping.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ListenError, ProxyService, with_default_backlog

from ..support.loopback import proxy_config


class BacklogTests(TestCase):
    def test_tcp_listeners_get_a_production_backlog(self):
        self.assertEqual(with_default_backlog("tcp:8080"), "tcp:8080:backlog=511")

    def test_an_explicit_backlog_is_kept(self):
        self.assertEqual(with_default_backlog("tcp:8080:backlog=9"), "tcp:8080:backlog=9")

    def test_unix_listeners_are_left_alone(self):
        self.assertEqual(with_default_backlog("unix:/tmp/s"), "unix:/tmp/s")


class ServiceTests(TestCase):
    def test_listens_on_every_listener_with_the_backlog(self):
        memory = MemoryReactorClock()
        service = ProxyService(proxy_config([9]), memory)
        service.startService()
        [(port, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, backlog, interface), (0, 511, "127.0.0.1"))
        self.assertEqual(len(service.ports), 1)

    def test_busy_port_is_refused_with_the_key_path(self):
        first = ProxyService(proxy_config([9]), reactor)
        first.startService()
        self.addCleanup(first.stopService)
        busy = first.ports[0].getHost().port
        config = proxy_config([9], endpoint="tcp:%d:interface=127.0.0.1" % busy)
        second = ProxyService(config, reactor)
        error = self.assertRaises(ListenError, second.privilegedStartService)
        self.assertIn("listeners.web.endpoint: cannot listen on tcp:%d" % busy, str(error))
        self.assertEqual(second.ports, [])
        self.flushLoggedErrors()

    def test_accepted_connections_send_without_nagles_delay(self):
        """
        The listening socket carries TCP_NODELAY, which Linux gives every
        socket accepted from it.
        """
        service = ProxyService(proxy_config([9]), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        listening = service.ports[0].socket
        self.assertEqual(listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        client = socket.create_connection(listening.getsockname())
        self.addCleanup(client.close)
        accepted, _ = listening.accept()
        self.addCleanup(accepted.close)
        self.assertEqual(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)

    def test_stop_closes_the_listeners(self):
        service = ProxyService(proxy_config([9]), reactor)
        service.startService()
        port = service.ports[0]
        d = service.stopService()
        d.addCallback(lambda _: self.assertFalse(port.connected))
        return d
