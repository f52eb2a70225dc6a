"""
The harness's unrecorded warm-up before each measured run: two loads when
it lasts 2 s or more, so that the measured run does not begin where every
connection of the warm-up closed at once (see C{run.warm_up}).
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from ..support import benchmarks  # noqa: F401  (the harness on sys.path)

import run  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402
from servers import RunningProxy  # noqa: E402

PROXY = RunningProxy("proxy", started=None, port=8080, tls_port=None)


class WarmUpTests(TestCase):
    def setUp(self):
        self.loads = []

        def run_load(ws, proxy, scenario, seconds, connections, rate=None):
            self.loads.append((scenario.name, seconds, connections, rate))
            return {}

        self.patch(run, "run_load", run_load)

    def test_long_warm_up_is_two_loads(self):
        """
        Thirty seconds of warm-up are two loads of fifteen, each with the
        scenario's connections: the second opens them again after the
        first closed them.
        """
        h2 = next(s for s in SCENARIOS if s.name == "h2-1x100")
        run.warm_up(None, PROXY, h2, 30.0, 64)
        self.assertEqual(self.loads, [("h2-1x100", 15.0, 64, None), ("h2-1x100", 15.0, 64, None)])

    def test_odd_seconds_are_whole_runs(self):
        """
        The loads last whole seconds (wrk's C{-d}), the second the longer.
        """
        run.warm_up(None, PROXY, SCENARIOS[0], 5, 64, rate=1000.0)
        self.assertEqual([(s, r) for _, s, _, r in self.loads], [(2, 1000.0), (3, 1000.0)])

    def test_one_second_is_one_load(self):
        """
        A warm-up under 2 s (C{--quick}'s) stays one load: half of it
        would be no run at all.
        """
        run.warm_up(None, PROXY, SCENARIOS[0], 1, 64)
        self.assertEqual([s for _, s, _, _ in self.loads], [1])
