"""
The signals an operator sends to a running proxy, for the twistd process
and for each worker process alike:

  - SIGHUP reloads the configuration (certificates included);
  - SIGUSR1 opens the access log file again (after logrotate);
  - SIGTERM and SIGINT stop gracefully and exit 0 (the reactor's own
    handlers would make twistd re-raise the signal at exit); another one
    during the graceful stop changes nothing.

A handler only schedules the work, through C{callFromThread}, which is
safe to call from a signal handler.
"""

from __future__ import annotations

import signal
from typing import Callable, Dict

from twisted.internet.error import ReactorNotRunning


def _handle(reactor, signum: int, action: Callable[[], object]) -> None:
    """
    Have C{action} run in the reactor's thread when C{signum} arrives.
    """

    def handler(signum, frame) -> None:
        reactor.callFromThread(action)

    signal.signal(signum, handler)


def handle_stop_signals(reactor) -> None:
    """
    Once the reactor runs (after it installed its own handlers), have
    SIGTERM and SIGINT stop it gracefully for good: a second one during
    the stop is no error.  The reactor's own handlers would log a
    C{ReactorNotRunning} traceback for it and make twistd end the process
    with the signal instead of exit status 0.
    """

    def stop() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass  # Stopping already: the drain goes on.

    reactor.callWhenRunning(_handle, reactor, signal.SIGTERM, stop)
    reactor.callWhenRunning(_handle, reactor, signal.SIGINT, stop)


def handle_signals(reactor, proxy) -> Callable[[], None]:
    """
    Install the handlers for C{proxy} (which has C{reload} and
    C{reopen_logs}), and L{handle_stop_signals}.

    @return: a function that puts the previous SIGHUP and SIGUSR1 handlers
        back, when the proxy stops.  The stop handlers stay until the
        process exits, for the second SIGTERM of an impatient operator
        during the drain.
    """
    previous: Dict[int, object] = {}
    for signum, action in ((signal.SIGHUP, proxy.reload), (signal.SIGUSR1, proxy.reopen_logs)):
        previous.setdefault(signum, signal.getsignal(signum))
        _handle(reactor, signum, action)
    handle_stop_signals(reactor)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    return restore
