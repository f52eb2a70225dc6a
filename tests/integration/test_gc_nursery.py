"""
Tests for L{txrevproxy.app.gc_nursery}: the PyPy nursery size a proxy process
runs with, and starting again to get it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import SkipTest

from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.gc_nursery import (
    NURSERY_SIZE,
    NURSERY_VARIABLE,
    command_line,
    restart_with_nursery,
    with_nursery,
)

from ..support.processes import (
    serving_twistd,
    source_tree_environment,
)


class WithNurseryTests(TestCase):
    def test_pypy_gets_the_size(self):
        environment = with_nursery({"PATH": "/bin"}, "pypy")
        self.assertEqual(environment, {"PATH": "/bin", NURSERY_VARIABLE: NURSERY_SIZE})

    def test_operator_size_is_kept(self):
        environment = with_nursery({NURSERY_VARIABLE: "32M"}, "pypy")
        self.assertEqual(environment, {NURSERY_VARIABLE: "32M"})

    def test_cpython_is_left_alone(self):
        self.assertEqual(with_nursery({"PATH": "/bin"}, "cpython"), {"PATH": "/bin"})

    def test_a_copy(self):
        environ = {"PATH": "/bin"}
        with_nursery(environ, "pypy")
        self.assertEqual(environ, {"PATH": "/bin"})


class CommandLineTests(TestCase):
    def test_script(self):
        self.assertEqual(
            command_line("/venv/bin/pypy3", [__file__, "-n", "txrevproxy"], None),
            ["/venv/bin/pypy3", __file__, "-n", "txrevproxy"],
        )

    def test_code_given_with_dash_c_cannot_be_run_again(self):
        self.assertIsNone(command_line("/venv/bin/pypy3", ["-c", "-n"], None))

    def test_package_run_with_dash_m(self):
        """
        C{python -m twisted txrevproxy}: C{argv[0]} is the path of
        C{twisted/__main__.py}, which is run again as C{-m twisted}.
        """
        self.assertEqual(
            command_line(
                "/venv/bin/pypy3",
                ["/venv/lib/twisted/__main__.py", "-n", "txrevproxy"],
                "twisted.__main__",
            ),
            ["/venv/bin/pypy3", "-m", "twisted", "-n", "txrevproxy"],
        )

    def test_module_run_with_dash_m(self):
        self.assertEqual(
            command_line(
                "/venv/bin/pypy3",
                ["/venv/lib/twisted/scripts/twistd.py", "-n"],
                "twisted.scripts.twistd",
            ),
            ["/venv/bin/pypy3", "-m", "twisted.scripts.twistd", "-n"],
        )


class RestartTests(TestCase):
    def setUp(self):
        self.calls = []

    def execve(self, path, argv, environ):
        self.calls.append((path, argv, environ))

    def restart(self, **kwargs):
        arguments = dict(
            implementation="pypy",
            environ={"HOME": "/home/proxy"},
            argv=[__file__, "-n", "txrevproxy", "--config", "p.toml"],
            executable="/venv/bin/pypy3",
            main_module="",
            execve=self.execve,
        )
        arguments.update(kwargs)
        restart_with_nursery(**arguments)

    def test_pypy_without_the_variable_starts_again(self):
        self.restart()
        self.assertEqual(
            self.calls,
            [
                (
                    "/venv/bin/pypy3",
                    [
                        "/venv/bin/pypy3",
                        __file__,
                        "-n",
                        "txrevproxy",
                        "--config",
                        "p.toml",
                    ],
                    {"HOME": "/home/proxy", NURSERY_VARIABLE: NURSERY_SIZE},
                )
            ],
        )

    def test_operator_variable_means_no_restart(self):
        self.restart(environ={NURSERY_VARIABLE: "1M"})
        self.assertEqual(self.calls, [])

    def test_cpython_never_restarts(self):
        self.restart(implementation="cpython")
        self.assertEqual(self.calls, [])

    def test_program_given_with_dash_c_goes_on(self):
        self.restart(argv=["-c", "-n", "txrevproxy"])
        self.assertEqual(self.calls, [])

    def test_failure_to_restart_goes_on(self):
        """
        When the program cannot be started again, this process goes on
        with PyPy's own nursery, and says so.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def execve(path, argv, environ):
            raise PermissionError(13, "Permission denied")

        self.restart(execve=execve)
        [warning] = [e for e in events if e.get("log_namespace") == "txrevproxy.app.gc_nursery"]
        self.assertEqual(warning["log_level"], LogLevel.warn)
        self.assertIn("Permission denied", formatEvent(warning))


class TwistdProcessTests(TestCase):
    """
    C{twistd -n txrevproxy}, run by its console script as an operator runs
    it, runs with the nursery variable on PyPy (the same process, started
    again) and without it on CPython.
    """

    def test_twistd_runs_with_the_nursery_size(self):
        twistd = Path(sys.executable).parent / "twistd"
        if not twistd.exists():
            raise SkipTest("no twistd script beside %s" % (sys.executable,))
        environment = source_tree_environment()
        environment.pop(NURSERY_VARIABLE, None)
        process, _ = serving_twistd(
            self, [str(twistd), "-n", "--pidfile="], environment
        )
        variables = Path("/proc/%d/environ" % (process.pid,)).read_bytes().split(b"\0")
        expected = (NURSERY_VARIABLE + "=" + NURSERY_SIZE).encode("ascii")
        if sys.implementation.name == "pypy":
            self.assertIn(expected, variables)
        else:
            self.assertNotIn(expected, variables)

