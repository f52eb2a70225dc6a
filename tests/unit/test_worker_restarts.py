"""
How long the supervisor waits before it starts a worker that died again:
a second after a crash of a worker that ran, longer each time for one
that keeps dying as it starts.
"""

from __future__ import annotations

from txrevproxy.app.workers import (
    MAX_RESTART_DELAY,
    RESTART_DELAY,
    STARTUP_PERIOD,
    restart_delay,
)


def test_a_worker_that_died_for_the_first_time_is_started_after_a_second():
    assert restart_delay(0.5, None) == RESTART_DELAY


def test_a_worker_dying_as_it_starts_waits_twice_as_long_each_time_up_to_a_bound():
    delays, previous = [], None
    for _ in range(8):
        previous = restart_delay(0.5, previous)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert delays[-1] == MAX_RESTART_DELAY


def test_a_worker_that_ran_a_while_before_dying_is_started_after_a_second_again():
    assert restart_delay(STARTUP_PERIOD, MAX_RESTART_DELAY) == RESTART_DELAY
