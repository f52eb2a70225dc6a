"""
The harness's paced scenario (C{latency}): loaded by wrk through
C{benchmarks/wrk/paced.lua}, which spreads the requests at the rate it is
given as its argument (see "latency" in C{benchmarks/README.rst}).
"""

from __future__ import annotations

import shutil
import tempfile

from twisted.trial.unittest import TestCase

from ..support import benchmarks  # noqa: F401  (the harness on sys.path)

import scenarios  # noqa: E402
from servers import RunningProxy, Workspace  # noqa: E402

PROXY = RunningProxy("proxy", started=None, port=8080, tls_port=None)


def scenario(name: str) -> scenarios.Scenario:
    return next(s for s in scenarios.SCENARIOS if s.name == name)


class PacedLoadTests(TestCase):
    def test_paced_scenario_is_loaded_by_wrk(self):
        """
        The paced scenario is a wrk load, not h2load's C{--rps} (whose
        connections all send at once, every 10 ms at least).
        """
        self.assertEqual(scenario("latency").tool, "wrk")
        self.assertEqual(scenario("h2c-small").tool, "h2load")

    def test_rate_is_the_scripts_argument(self):
        """
        The rate in requests a second, for all connections together, goes to
        the script after C{--}, behind the URL.
        """
        argv = scenarios.wrk_argv("paced.lua", PROXY, scenario("latency"), 5, 64, 2771.71)
        self.assertEqual(argv[-3:], ["http://127.0.0.1:8080/small", "--", "2771.710"])
        self.assertEqual(argv[argv.index("-c") + 1], "64")
        self.assertEqual(argv[argv.index("-s") + 1], "paced.lua")

    def test_paced_scenario_without_a_rate_is_refused(self):
        """
        Without a rate the script would have nothing to pace by.
        """
        with self.assertRaises(ValueError):
            scenarios.wrk_argv("paced.lua", PROXY, scenario("latency"), 5, 64)

    def test_unpaced_scenario_has_no_script_argument(self):
        """
        A scenario at full speed ends with its URL, whatever rate is given.
        """
        argv = scenarios.wrk_argv("report.lua", PROXY, scenario("small"), 5, 64, 100.0)
        self.assertEqual(argv[-1], "http://127.0.0.1:8080/small")

    def test_script_paces_then_reports(self):
        """
        The script wrk runs is C{paced.lua} and then the JSON reporter, whose
        C{done} adds the pacer's count of late requests.
        """
        ws = Workspace(tempfile.mkdtemp(), group=None, cpython="", pypy="")
        self.addCleanup(shutil.rmtree, ws.tmp)
        with open(scenarios._wrk_script(ws, scenario("latency"))) as f:
            text = f.read()
        self.assertLess(text.index("delay = function"), text.index("done = function"))
        self.assertIn("report_extra", text[text.index("done = function"):])
