"""
Tests for the service twistd runs, C{_TwistdService} of
C{twisted/plugins/txrevproxy_plugin.py}: when the operator's signals start
to count.
"""

from __future__ import annotations

import signal

from twisted.application.service import Service
from twisted.trial.unittest import SynchronousTestCase

from twisted.plugins.txrevproxy_plugin import _TwistdService


class CallsFromThreads:
    """
    The reactor methods the handlers use: C{callFromThread} recorded, the
    stop handlers' (installed once it runs) left out.
    """

    def __init__(self) -> None:
        self.calls = []

    def callFromThread(self, f, *args) -> None:
        self.calls.append(f)

    def callWhenRunning(self, f, *args) -> None:
        pass

    def stop(self) -> None:
        pass


class Proxy(Service):
    """
    What the signals act on, started only when told.
    """

    def reload(self) -> None:
        pass

    def reopen_logs(self) -> None:
        pass


class SignalTests(SynchronousTestCase):
    def setUp(self) -> None:
        previous = signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGHUP, previous[0])
        self.addCleanup(signal.signal, signal.SIGUSR1, previous[1])
        self.reactor = CallsFromThreads()
        self.proxy = Proxy()
        self.service = _TwistdService(self.reactor, self.proxy)
        self.proxy.setServiceParent(self.service)

    def test_sighup_reloads_from_when_the_listeners_open(self):
        """
        twistd opens the listeners (C{privilegedStartService}) before it
        starts the proxy, which can take a while: a SIGHUP in between
        schedules a reload, rather than ending the process as the
        signal's default action does.
        """
        self.service.privilegedStartService()
        self.assertFalse(self.proxy.running)
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        signal.getsignal(signal.SIGUSR1)(signal.SIGUSR1, None)
        self.assertEqual(self.reactor.calls, [self.proxy.reload, self.proxy.reopen_logs])

    def test_handlers_are_installed_once_and_put_back_at_stop(self):
        """
        twistd calls C{privilegedStartService} again after the plugin did
        (before daemonizing); the handlers stay, and stopping puts the
        previous ones back.
        """
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        self.service.privilegedStartService()
        installed = signal.getsignal(signal.SIGHUP)
        self.service.privilegedStartService()
        self.service.startService()
        self.assertIs(signal.getsignal(signal.SIGHUP), installed)
        self.service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)
