"""
Tests for L{txrevproxy.app.signals}: what the stop signals do, once and
again.
"""

from __future__ import annotations

import signal

from twisted.internet.error import ReactorNotRunning
from twisted.trial.unittest import SynchronousTestCase

from txrevproxy.app.signals import handle_signals


class StoppingReactor:
    """
    A reactor that runs at once what it is given, and stops once: a
    second C{stop} raises, as Twisted's does while it is stopping.
    """

    def __init__(self) -> None:
        self.stops = 0

    def callWhenRunning(self, f, *args) -> None:
        f(*args)

    def callFromThread(self, f, *args) -> None:
        f(*args)

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")


class Proxy:
    def reload(self) -> None:
        pass

    def reopen_logs(self) -> None:
        pass


class StopSignalTests(SynchronousTestCase):
    def setUp(self) -> None:
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        self.reactor = StoppingReactor()

    def test_a_second_stop_signal_is_no_error(self):
        """
        SIGTERM, then SIGTERM or SIGINT again while the reactor stops: the
        reactor's refusal to stop twice is not raised into it (it would
        log a critical traceback).
        """
        handle_signals(self.reactor, Proxy())
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        self.assertEqual(self.reactor.stops, 3)

    def test_the_stop_handlers_stay_after_the_others_are_put_back(self):
        """
        When the proxy stops, SIGHUP and SIGUSR1 get their previous
        handlers back; SIGTERM and SIGINT keep the proxy's, so that a
        second one during the drain does not reach the reactor's own.
        """
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        restore = handle_signals(self.reactor, Proxy())
        installed = signal.getsignal(signal.SIGTERM)
        restore()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)
        self.assertIs(signal.getsignal(signal.SIGTERM), installed)
