"""
A third-party filter type, installed from a temporary directory on the
plugin path and used by name through the configuration: the complete
example of C{docs/security.rst}, taken from the document itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from txrevproxy.config import ConfigError
from txrevproxy.filters.build import build_filters
from txrevproxy.plugins import filter_types

from ..support.configs import document, parse
from ..support.doc_examples import check_with_plugins, example_files, installed_example
from ..support.filter_requests import FakeRequest

HOURS = """
[filters.hours]
type = "office_hours"
opens = 8
closes = 18
always = ["10.0.0.0/8"]
"""


@pytest.fixture
def plugin_directory(tmp_path: Path):
    files = example_files("security.rst")
    assert set(files) == {
        "office_hours/__init__.py",
        "twisted/plugins/office_hours_plugin.py",
        "setup.cfg",
    }
    modules = ["office_hours", "twisted.plugins.office_hours_plugin"]
    with installed_example(files, tmp_path, modules) as directory:
        yield directory


def test_a_plugin_filter_is_used_by_name(plugin_directory):
    assert "office_hours" in filter_types()
    config = parse(document(route='upstream = "app"\nfilters = ["hours"]', extra=HOURS))
    clock = Clock()
    hours = build_filters(config, clock)["hours"]
    clock.advance(3 * 3600)  # 03:00 UTC
    assert hours.request(FakeRequest(b"192.0.2.1")).status == 403
    assert hours.request(FakeRequest(b"10.1.1.1")) is None
    clock.advance(7 * 3600)  # 10:00 UTC
    assert hours.request(FakeRequest(b"192.0.2.1")) is None


def test_its_problems_have_key_paths(plugin_directory):
    with pytest.raises(ConfigError) as caught:
        parse(document(extra='[filters.hours]\ntype = "office_hours"\nopens = 20\nclosed = 1'))
    assert caught.value.problems == [
        "filters.hours.closed: unknown key",
    ]


def test_without_the_plugin_the_type_is_unknown():
    with pytest.raises(ConfigError) as caught:
        parse(document(extra=HOURS))
    assert 'filters.hours.type: unknown filter type "office_hours"' in caught.value.problems[0]


def test_check_accepts_a_plugin_on_the_python_path(plugin_directory):
    result = check_with_plugins(
        plugin_directory, document(route='upstream = "app"\nfilters = ["hours"]', extra=HOURS)
    )
    assert result.returncode == 0, result.stderr
    assert b": OK: " in result.stdout, result.stdout
