"""
A third-party balancing policy, installed from a temporary directory on the
plugin path and used by name through the configuration: the complete
example of C{docs/balancing.rst}, taken from the document itself so that
the example cannot go stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from txrevproxy.app.runtime import Runtime
from txrevproxy.config import parse_config
from txrevproxy.plugins import policy_names

from ..support.balancing import FakeRequest, pick
from ..support.configs import document, tomllib
from ..support.doc_examples import check_with_plugins, example_files, installed_example


@pytest.fixture
def plugin_directory(tmp_path: Path):
    """
    A directory holding the example policy, on the Python path and on the
    plugin path for the length of the test.
    """
    files = example_files("balancing.rst")
    assert set(files) == {
        "failover_policy/__init__.py",
        "twisted/plugins/failover_policy_plugin.py",
        "setup.cfg",
    }
    modules = ["failover_policy", "twisted.plugins.failover_policy_plugin"]
    with installed_example(files, tmp_path, modules) as directory:
        yield directory


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
    result = check_with_plugins(plugin_directory, document(upstream=FAILOVER))
    assert result.returncode == 0, result.stderr
    assert b": OK: " in result.stdout, result.stdout
