"""
Tests for L{txrevproxy.app.pypy_jit}: the JIT settings a proxy process
runs with on PyPy.
"""

from __future__ import annotations

import sys
from unittest import SkipTest

from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.pypy_jit import JIT_PARAMETERS, JIT_VARIABLE, apply_jit_parameters


class ApplyJitParametersTests(TestCase):
    def setUp(self):
        self.set = []

    def apply(self, environ):
        return apply_jit_parameters(environ, set_param=self.set.append)

    def test_proxy_parameters_by_default(self):
        self.assertEqual(self.apply({}), JIT_PARAMETERS)
        self.assertEqual(self.set, [JIT_PARAMETERS])

    def test_operator_parameters_are_used(self):
        chosen = "threshold=1039,function_threshold=1619"
        self.assertEqual(self.apply({JIT_VARIABLE: chosen}), chosen)
        self.assertEqual(self.set, [chosen])

    def test_empty_variable_keeps_pypy_defaults(self):
        self.assertIsNone(self.apply({JIT_VARIABLE: ""}))
        self.assertEqual(self.set, [])

    def logged(self):
        """
        The events this module logs from now on, as a list that fills.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def refusing(self, error: Exception):
        """
        A C{set_param} that records what it is given and raises C{error}
        for anything but PyPy's defaults, as PyPy's does.
        """

        def refuse(parameters):
            self.set.append(parameters)
            if parameters != "default":
                raise error

        return refuse

    def warning(self, events):
        [warning] = [e for e in events if e.get("log_namespace") == "txrevproxy.app.pypy_jit"]
        self.assertEqual(warning["log_level"], LogLevel.warn)
        return formatEvent(warning)

    def test_refused_parameters_are_logged_and_defaults_restored(self):
        """
        PyPy sets a string's parameters up to the one it refuses: the
        defaults are set again, and the operator is told.
        """
        events = self.logged()
        refuse = self.refusing(ValueError("error in JIT parameters string"))
        result = apply_jit_parameters({JIT_VARIABLE: "treshold=9"}, set_param=refuse)
        self.assertIsNone(result)
        self.assertEqual(self.set, ["treshold=9", "default"])
        self.assertIn("TXREVPROXY_PYPY_JIT=treshold=9", self.warning(events))

    def test_values_out_of_range_are_refused_as_well(self):
        """
        PyPy refuses a value out of range (a C{trace_limit} above 16383)
        with a SystemError: the defaults are set again too, and the
        operator is told, rather than the reactor's start logging a
        traceback.
        """
        events = self.logged()
        refuse = self.refusing(SystemError("unexpected internal exception: <TraceLimitTooHigh>"))
        self.assertIsNone(apply_jit_parameters({JIT_VARIABLE: "trace_limit=20000"}, set_param=refuse))
        self.assertEqual(self.set, ["trace_limit=20000", "default"])
        self.assertIn("TXREVPROXY_PYPY_JIT=trace_limit=20000", self.warning(events))

    def test_pypy_refuses_a_trace_limit_out_of_range(self):
        """
        PyPy's own C{set_param}, given a C{trace_limit} too high, leaves a
        warning and PyPy's defaults.
        """
        try:
            import pypyjit
        except ImportError:
            raise SkipTest("no PyPy JIT")
        self.addCleanup(pypyjit.set_param, "default")
        events = self.logged()
        self.assertIsNone(apply_jit_parameters({JIT_VARIABLE: "trace_limit=20000"}))
        self.assertIn("TXREVPROXY_PYPY_JIT=trace_limit=20000", self.warning(events))

    def test_nothing_without_a_jit(self):
        if sys.implementation.name == "pypy":
            raise SkipTest("PyPy has the JIT")
        self.assertIsNone(apply_jit_parameters({}))

    def test_pypy_takes_the_proxy_parameters(self):
        """
        PyPy's own C{set_param} accepts L{JIT_PARAMETERS} as written.
        """
        try:
            import pypyjit
        except ImportError:
            raise SkipTest("no PyPy JIT")
        self.addCleanup(pypyjit.set_param, "default")
        self.assertEqual(apply_jit_parameters({}), JIT_PARAMETERS)
