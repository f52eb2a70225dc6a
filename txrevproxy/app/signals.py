"""
The signals an operator sends to a running proxy, for the twistd process
and for each worker process alike:

  - SIGHUP reloads the configuration (certificates included);
  - SIGUSR1 opens the access log file again (after logrotate);
  - SIGTERM and SIGINT stop gracefully and exit 0 (the reactor's own
    handlers would make twistd re-raise the signal at exit).

A handler only schedules the work, through C{callFromThread}, which is
safe to call from a signal handler.
"""

from __future__ import annotations

import signal
from typing import Callable, Dict


def handle_signals(reactor, proxy) -> Callable[[], None]:
    """
    Install the handlers for C{proxy} (which has C{reload} and
    C{reopen_logs}).  The stop handlers are installed once the reactor
    runs, after its own.

    @return: a function that puts the previous handlers back.
    """
    previous: Dict[int, object] = {}

    def handle(signum: int, action: Callable[[], object]) -> None:
        def handler(signum, frame) -> None:
            reactor.callFromThread(action)

        previous.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, handler)

    handle(signal.SIGHUP, proxy.reload)
    handle(signal.SIGUSR1, proxy.reopen_logs)
    reactor.callWhenRunning(handle, signal.SIGTERM, reactor.stop)
    reactor.callWhenRunning(handle, signal.SIGINT, reactor.stop)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    return restore
