"""
A third-party balancing policy, installed from a temporary directory on the
plugin path and used by name through the configuration: the complete
example of C{docs/balancing.rst}, taken from the document itself so that
the example cannot go stale.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import twisted.plugins
from twisted.internet.testing import MemoryReactorClock

from txrevproxy.config import parse_config
from txrevproxy.policies import policy_names
from txrevproxy.runtime import Runtime

from .balancing import FakeRequest, pick
from .processes import SOURCE_ROOT, source_tree_environment
from .test_config import document, tomllib

#: A literal block captioned with a file name: ``path``:: and its lines.
_EXAMPLE_FILE = re.compile(r"^``([\w/.]+)``::\n\n((?:(?:    .*)?\n)+)", re.MULTILINE)


def example_files() -> dict:
    """
    The files of the plugin example in the docs, by path.
    """
    text = (SOURCE_ROOT / "docs" / "balancing.rst").read_text()
    return {
        path: "\n".join(line[4:] for line in body.splitlines()).strip() + "\n"
        for path, body in _EXAMPLE_FILE.findall(text)
    }


@pytest.fixture
def plugin_directory(tmp_path: Path):
    """
    A directory holding the example policy, on the Python path and on the
    plugin path for the length of the test.
    """
    files = example_files()
    assert set(files) == {
        "failover_policy/__init__.py",
        "twisted/plugins/failover_policy_plugin.py",
        "setup.cfg",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    plugins = str(tmp_path / "twisted" / "plugins")
    sys.path.insert(0, str(tmp_path))
    twisted.plugins.__path__.append(plugins)
    yield tmp_path
    twisted.plugins.__path__.remove(plugins)
    sys.path.remove(str(tmp_path))
    for module in ["failover_policy", "twisted.plugins.failover_policy_plugin"]:
        sys.modules.pop(module, None)


FAILOVER = """
balance = "failover"
servers = [
  { url = "http://127.0.0.1:9001" },
  { url = "http://127.0.0.1:9002" },
]
"""


def test_a_plugin_policy_is_used_by_name(plugin_directory):
    assert "failover" in policy_names()
    config = parse_config(tomllib.loads(document(upstream=FAILOVER)))
    balancer = Runtime(config, MemoryReactorClock()).balancers["app"]
    assert {pick(balancer, FakeRequest()).server.port for _ in range(5)} == {9001}
    balancer.drain(0)
    assert {pick(balancer, FakeRequest()).server.port for _ in range(5)} == {9002}


def test_without_the_plugin_the_name_is_unknown():
    with pytest.raises(Exception) as raised:
        parse_config(tomllib.loads(document(upstream=FAILOVER)))
    assert 'upstreams.app.balance: unknown value "failover"' in str(raised.value)


def test_check_accepts_a_plugin_on_the_python_path(plugin_directory):
    """
    As an operator would: the plugin's directory on PYTHONPATH, and
    C{txrevproxy check} run in a new process.
    """
    config = plugin_directory / "proxy.toml"
    config.write_text(document(upstream=FAILOVER))
    environment = source_tree_environment()
    environment["PYTHONPATH"] = "%s:%s" % (plugin_directory, environment["PYTHONPATH"])
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from txrevproxy.cli import main; sys.exit(main())",
            "check",
            "--config",
            str(config),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert b": OK: " in result.stdout, result.stdout
