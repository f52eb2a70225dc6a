"""
Waiting, in a test, until something another party does has happened: the
proxy in this process (L{until}, which gives the reactor its turns), or a
proxy in another process, reached over the network or through its files
(L{until_blocking}, which sleeps).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Tuple, Type

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

#: How long L{until_blocking} waits by default: a bound on every wait for
#: another process to do something.
WAIT = 30.0


@inlineCallbacks
def until(condition: Callable[[], Any], timeout: Optional[float] = None):
    """
    Wait, a reactor turn at a time, until C{condition()} holds.

    @param timeout: fail with C{AssertionError} after this many seconds;
        L{None}: the wait is bounded by the test's own timeout.
    """
    deadline = None if timeout is None else reactor.seconds() + timeout
    while not condition():
        assert deadline is None or reactor.seconds() < deadline, "condition not met in time"
        yield deferLater(reactor, 0.01, lambda: None)


def until_blocking(
    condition: Callable[[], Any],
    timeout: float = WAIT,
    not_yet: Tuple[Type[BaseException], ...] = (),
) -> Any:
    """
    Poll C{condition()}, sleeping between tries, until it is true; fail
    with C{AssertionError} after C{timeout} seconds.

    @param not_yet: the exceptions of C{condition()} that count as false,
        such as C{OSError} for a connection it cannot make yet (with
        workers, the listener accepts connections a moment before the
        admin API does).
    @return: the true value of C{condition()}.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except not_yet:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
