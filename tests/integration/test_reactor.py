"""
Tests for L{txrevproxy.net.reactor}: the epoll reactor without a logging
context per event, and when twistd runs the proxy on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import SkipTest, mock

from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.net.reactor import EPollReactor, install_unless_chosen

from ..support.processes import (
    serving_twistd,
    source_tree_environment,
    stop_process,
    twistd_command,
)

if EPollReactor is not None:
    from txrevproxy.net.reactor import ProxyEPollReactor


class PipeReader(FileDescriptor):
    """
    The read end of a pipe, recording what it reads; C{lost} says what
    happened when the reactor dropped it, and C{breakOnLoss} makes that
    raise.
    """

    def __init__(self, reactor, fd: int, breakOnLoss: bool = False) -> None:
        super().__init__(reactor)
        self.fd = fd
        self.read = b""
        self.lost = None
        self.breakOnLoss = breakOnLoss

    def fileno(self) -> int:
        return self.fd

    def doRead(self):
        data = os.read(self.fd, 1024)
        if not data:
            return main.CONNECTION_DONE
        self.read += data
        return None

    def connectionLost(self, reason) -> None:
        self.lost = reason
        if self.breakOnLoss:
            raise RuntimeError("broken connectionLost")


class ProxyEPollReactorTests(TestCase):
    def setUp(self):
        if EPollReactor is None:
            raise SkipTest("no epoll on this platform")
        self.reactor = ProxyEPollReactor()
        self.addCleanup(self.reactor._poller.close)
        self.addCleanup(self.reactor.waker.connectionLost, None)

    def pipe(self, **kwargs) -> tuple:
        read_end, write_end = os.pipe()
        self.addCleanup(self._close_quietly, write_end)
        self.addCleanup(self._close_quietly, read_end)
        reader = PipeReader(self.reactor, read_end, **kwargs)
        self.reactor.addReader(reader)
        self.addCleanup(self.reactor.removeReader, reader)
        return reader, write_end

    @staticmethod
    def _close_quietly(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def test_events_reach_their_handlers(self):
        first, first_end = self.pipe()
        second, second_end = self.pipe()
        os.write(first_end, b"one")
        os.write(second_end, b"two")
        self.reactor.doIteration(0)
        self.assertEqual((first.read, second.read), (b"one", b"two"))

    def test_a_closed_descriptor_is_dropped(self):
        reader, write_end = self.pipe()
        os.close(write_end)
        self.reactor.doIteration(0)
        self.assertIsNotNone(reader.lost)
        self.assertNotIn(reader, self.reactor.getReaders())

    def test_an_escaping_error_is_logged_and_the_loop_goes_on(self):
        """
        An exception that escapes the reactor's handling of one event (here
        from a C{connectionLost}) is logged, and the other events of the
        same poll are still handled.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        broken, broken_end = self.pipe(breakOnLoss=True)
        healthy, healthy_end = self.pipe()
        os.close(broken_end)
        os.write(healthy_end, b"still served")
        self.reactor.doIteration(0)
        self.assertEqual(healthy.read, b"still served")
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0]["log_failure"].value, RuntimeError)
        self.flushLoggedErrors(RuntimeError)

    def test_interrupted_poll_returns(self):
        self.reactor._poller = mock.Mock()
        self.reactor._poller.poll.side_effect = InterruptedError(4, "EINTR")
        self.reactor.doIteration(0)


class InstallTests(TestCase):
    def test_not_over_an_installed_reactor(self):
        with mock.patch.dict(sys.modules, {"twisted.internet.reactor": object()}):
            self.assertFalse(install_unless_chosen())

    def test_installed_when_none_is(self):
        if EPollReactor is None:
            raise SkipTest("no epoll on this platform")
        code = (
            "from txrevproxy.net.reactor import install_unless_chosen\n"
            "print(install_unless_chosen())\n"
            "from twisted.internet import reactor\n"
            "print(type(reactor).__name__)\n"
        )
        output = subprocess.run(
            [sys.executable, "-c", code],
            env=source_tree_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()
        self.assertEqual(output, ["True", "ProxyEPollReactor"])


class TwistdReactorTests(TestCase):
    """
    C{twistd -n txrevproxy} runs on L{ProxyEPollReactor}, and on the
    reactor an operator chose with C{--reactor} when there is one.
    """

    def run_twistd(self, *options: str) -> str:
        """
        Run twistd with C{options} before the plugin's name, check that it
        serves, stop it and return its log.
        """
        process, log = serving_twistd(
            self, twistd_command("-n", "--pidfile=", *options)
        )
        stop_process(process)
        return log.read_text()

    def test_default(self):
        if EPollReactor is None:
            raise SkipTest("no epoll on this platform")
        self.assertIn(
            "reactor class: txrevproxy.net.reactor.ProxyEPollReactor", self.run_twistd()
        )

    def test_chosen_reactor_is_kept(self):
        self.assertIn(
            "reactor class: twisted.internet.pollreactor.PollReactor",
            self.run_twistd("--reactor=poll"),
        )
