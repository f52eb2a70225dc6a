"""
The operations keys of the configuration: C{[server] workers} and
C{shutdown_timeout}, C{[log]} and C{[admin]}.
"""

from __future__ import annotations

import os

import pytest

from txrevproxy.config.model import AdminSettings, LogSettings

from ..support.configs import document, parse, problems


def test_without_the_tables_there_is_no_access_log_and_no_admin_api():
    config = parse(document())
    assert (config.log, config.admin) == (LogSettings(access=None), None)
    assert (config.server.workers, config.server.shutdown_timeout) == (1, 30.0)


def test_present_tables_default_to_stdout_and_loopback():
    config = parse(document(extra="[log]\n[admin]\n"))
    assert config.log == LogSettings("-", "combined")
    assert config.admin == AdminSettings("tcp:9901:interface=127.0.0.1", None)


def test_workers_auto_is_one_per_core():
    config = parse(document(server='workers = "auto"'))
    assert config.server.workers == (os.cpu_count() or 1)


def test_access_off_and_json():
    config = parse(document(extra='[log]\naccess = "off"\nformat = "json"\n'))
    assert config.log == LogSettings(None, "json")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            document(server='workers = "many"'),
            'server.workers: expected a number of processes or "auto", got "many"',
        ),
        (document(server="workers = 0"), "server.workers: must be at least 1, got 0"),
        (
            document(server="shutdown_timeout = 5"),
            'server.shutdown_timeout: expected a duration such as "5s", got 5',
        ),
        (
            document(extra='[log]\nformat = "common"\n'),
            'log.format: unknown value "common"; expected one of "combined", "json"',
        ),
        (
            document(extra='[admin]\ntoken = "has space"\n'),
            'admin.token: expected a token of letters, digits and ._~+/=-, got "has space"',
        ),
        (
            document(extra='[admin]\nendpoint = "nope:1"\n'),
            "admin.endpoint: invalid server endpoint",
        ),
    ],
)
def test_problems(text, expected):
    [found] = problems(text)
    assert found.startswith(expected)
