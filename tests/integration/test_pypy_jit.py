"""
Tests for L{txrevproxy.app.pypy_jit} in a real C{twistd -n txrevproxy}: the
proxy process sets the JIT's parameters once it runs, on PyPy only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import TestCase

from txrevproxy.app.pypy_jit import JIT_VARIABLE

from ..support.processes import serving_twistd, source_tree_environment


class TwistdJitTests(TestCase):
    def test_twistd_sets_the_operator_parameters(self):
        """
        The operator's L{JIT_VARIABLE} reaches PyPy's JIT in the process
        that serves (a value PyPy refuses says so in the log); CPython has
        no JIT and does nothing with it.
        """
        twistd = Path(sys.executable).parent / "twistd"
        if not twistd.exists():
            raise SkipTest("no twistd script beside %s" % (sys.executable,))
        environment = source_tree_environment()
        environment[JIT_VARIABLE] = "treshold=9"
        _, log_path = serving_twistd(self, [str(twistd), "-n", "--pidfile="], environment)
        refused = "%s=treshold=9 is not a setting PyPy's JIT takes" % (JIT_VARIABLE,)
        if sys.implementation.name == "pypy":
            self.assertIn(refused, log_path.read_text())
        else:
            self.assertNotIn(refused, log_path.read_text())
