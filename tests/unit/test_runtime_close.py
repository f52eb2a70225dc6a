"""
Tests for L{txrevproxy.app.runtime.Runtime.close}: a runtime is closed
once, however often it is asked (a reload retires it and closes it when
idle, and the service's stop closes every runtime it still knows).
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from txrevproxy.app.runtime import Runtime

from ..support.configs import document, parse


class CountingFilter:
    """
    A filter that holds something to close, and counts its closes.
    """

    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_second_close_does_nothing():
    runtime = Runtime(parse(document()), MemoryReactorClock())
    counting = runtime.filters["counting"] = CountingFilter()
    closed = []
    runtime.close().addCallback(closed.append)
    runtime.close().addCallback(closed.append)
    assert runtime.closed
    assert counting.closed == 1
    assert len(closed) == 2
