"""
Tests for the twistd plugin, C{twisted/plugins/txrevproxy_plugin.py}: that
it is a proper service maker, parses its options, refuses a bad
configuration with sentences, and that an installed txrevproxy is found by
C{twistd}.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import IPlugin
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface.verify import verifyObject

from twisted.plugins.txrevproxy_plugin import Options, StartFailure, serviceMaker
from txrevproxy.app.service import ProxyService
from txrevproxy.config import ConfigError, load_config

from ..support.processes import (
    SOURCE_ROOT,
    free_port,
    proxy_modules_imported_by,
    simple_config,
    temporary_directory,
    twistd_command,
)


def write(directory: Path, text: str) -> str:
    path = directory / "proxy.toml"
    path.write_text(text)
    return str(path)


class ServiceMakerTests(TestCase):
    def test_service_maker_provides_the_twistd_interfaces(self):
        self.assertTrue(verifyObject(IServiceMaker, serviceMaker))
        self.assertTrue(verifyObject(IPlugin, serviceMaker))
        self.assertEqual(serviceMaker.tapname, "txrevproxy")
        self.assertIs(serviceMaker.options, Options)

    def test_importing_the_plugin_imports_no_reactor_or_proxy_code(self):
        """
        twistd imports every plugin module just to list them; the module
        defers its real imports to makeService, so that listing never
        fails and never installs a reactor.
        """
        self.assertEqual(
            proxy_modules_imported_by("twisted.plugins.txrevproxy_plugin"), []
        )

    def test_valid_config_makes_an_unstarted_proxy_service(self):
        path = write(temporary_directory(self), simple_config(free_port(), ["http://127.0.0.1:9"]))
        options = Options()
        options.parseOptions(["--config", path])
        service = serviceMaker.makeService(options)
        self.assertTrue(verifyObject(IService, service))
        [proxy] = list(service)
        self.assertIsInstance(proxy, ProxyService)
        self.assertEqual(proxy.config, load_config(path))
        self.assertFalse(proxy.running)

    def test_invalid_config_exits_with_every_problem(self):
        text = simple_config(free_port(), ["http://127.0.0.1:9"]).replace(
            'upstream = "app"', 'upstream = "nosuch"'
        )
        path = write(temporary_directory(self), text)
        options = Options()
        options.parseOptions(["-c", path])
        error = self.assertRaises(StartFailure, serviceMaker.makeService, options)
        with self.assertRaises(ConfigError) as expected:
            load_config(path)
        self.assertEqual(str(error), str(expected.exception))
        self.assertIn('routes[0].upstream: no upstream named "nosuch"', str(error))

    def test_missing_config_exits_with_a_sentence(self):
        path = str(temporary_directory(self) / "absent.toml")
        options = Options()
        options.parseOptions(["--config", path])
        error = self.assertRaises(StartFailure, serviceMaker.makeService, options)
        self.assertTrue(str(error).startswith(path + ": "), str(error))

    def test_start_failure_exits_non_zero_and_is_reported_by_twistd(self):
        """
        A L{SystemExit} whose message Python prints alone and exits 1 with,
        and an L{Exception}, which twistd cleans up after (pid file, the
        daemonizing parent's message).
        """
        failure = StartFailure("listeners.web.endpoint: cannot listen")
        self.assertIsInstance(failure, SystemExit)
        self.assertIsInstance(failure, Exception)
        self.assertEqual(failure.code, "listeners.web.endpoint: cannot listen")


class OptionsTests(TestCase):
    def test_config_defaults_to_proxy_toml(self):
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["config"], "proxy.toml")

    def test_long_and_short_config_options(self):
        for arguments in (["--config", "a.toml"], ["--config=a.toml"], ["-c", "a.toml"]):
            options = Options()
            options.parseOptions(arguments)
            self.assertEqual(options["config"], "a.toml")

    def test_unknown_option_is_a_usage_error(self):
        self.assertRaises(UsageError, Options().parseOptions, ["--port", "80"])


def installed() -> bool:
    """
    Whether txrevproxy is installed in this interpreter's environment
    (C{pip install .}, or editable in compat mode), rather than only
    importable from a source tree.  Metadata in the source tree itself (the
    C{txrevproxy.egg-info} a build leaves there) does not count.
    """
    from importlib.metadata import distributions

    paths = [entry for entry in sys.path if entry and Path(entry).resolve() != SOURCE_ROOT]
    return any(True for _ in distributions(name="txrevproxy", path=paths))


class InstalledPluginTests(TestCase):
    def test_twistd_lists_the_installed_plugin(self):
        """
        C{twistd --help} run with this interpreter, away from the source
        tree, lists txrevproxy: the plugin file was installed into
        site-packages' C{twisted/plugins}.
        """
        if not installed():
            raise SkipTest(
                "txrevproxy is not installed in this environment "
                "(run 'pip install .' to test the installed plugin)"
            )
        environment = dict(os.environ)
        environment.pop("PYTHONPATH", None)
        directory = str(temporary_directory(self))
        result = subprocess.run(
            twistd_command("--help"),
            cwd=directory,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        output = result.stdout.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0, result.stderr)
        commands = [line.split()[0] for line in output.splitlines() if line.startswith("    ")]
        self.assertIn(
            "txrevproxy",
            commands,
            "twistd does not see the txrevproxy plugin: was the package "
            "installed with a plain 'pip install -e .'?  Use 'pip install .' "
            "or add '--config-settings editable_mode=compat'.\n" + output,
        )
        self.assertNotIn(b"Traceback", result.stderr)
