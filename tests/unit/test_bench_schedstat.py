"""
The harness's reading of a proxy's CPU time and run-queue wait
(C{benchmarks/schedstat.py}).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from ..support import benchmarks  # noqa: F401  (the harness on sys.path)

import schedstat  # noqa: E402


class SchedstatTests(TestCase):
    def test_parse_reads_cpu_and_wait_nanoseconds(self):
        """
        The first field is the time on a CPU, the second the time waiting
        for one; the count of time slices after them is left out.
        """
        self.assertEqual(schedstat.parse("4134845219 8483875755 4074\n"),
                         (4134845219, 8483875755))

    def test_since_gives_milliseconds_between_samples(self):
        """
        Two samples give what happened between them, in milliseconds.
        """
        self.assertEqual(schedstat.since((1_000_000, 5_000_000), (3_500_000, 5_000_000)),
                         {"cpu_ms": 2.5, "cpu_wait_ms": 0.0})

    def test_sample_sums_processes_and_skips_gone_ones(self):
        """
        A sample sums the processes it is given; one that no longer exists
        (no /proc entry) counts nothing rather than failing the run.
        """
        gone = 2 ** 22 + 1  # above Linux's largest pid
        own = schedstat.sample([os.getpid()])
        self.assertGreater(own[0], 0)
        self.assertGreaterEqual(schedstat.sample([os.getpid(), gone])[0], own[0])
        self.assertEqual(schedstat.sample([gone]), (0, 0))
