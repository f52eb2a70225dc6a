"""
Tests of the tests' L{tests.support.waiting.until_blocking}: what each of
its callers relies on.
"""

from __future__ import annotations

import pytest

from ..support.waiting import until_blocking


def test_returns_the_true_value_of_the_condition():
    values = iter([0, None, [3]])
    assert until_blocking(lambda: next(values)) == [3]


def test_exceptions_named_not_yet_count_as_false_and_others_are_raised():
    tries = []

    def connect():
        tries.append(None)
        if len(tries) < 3:
            raise ConnectionRefusedError()
        return "connected"

    assert until_blocking(connect, not_yet=(OSError,)) == "connected"

    def refused():
        raise ConnectionRefusedError()

    with pytest.raises(ConnectionRefusedError):
        until_blocking(refused)


def test_a_condition_still_false_at_the_deadline_fails():
    with pytest.raises(AssertionError, match="condition not met in time"):
        until_blocking(lambda: False, timeout=0.0)
