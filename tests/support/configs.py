"""
The configuration documents the tests parse: a minimal valid one, and
parsing or collecting the problems of a variant.
"""

from __future__ import annotations

import sys

import pytest

from txrevproxy.config import (
    Config,
    ConfigError,
    parse_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def document(
    server: str = "",
    listener: str = 'endpoint = "tcp:8080"',
    upstream: str = 'servers = [{ url = "http://127.0.0.1:9001" }]',
    route: str = 'upstream = "app"',
    extra: str = "",
) -> str:
    """
    A configuration with one listener C{web}, one upstream C{app} and one
    route, each table's body replaceable.
    """
    return (
        "[server]\n%s\n\n[listeners.web]\n%s\n\n[upstreams.app]\n%s\n\n"
        "[[routes]]\n%s\n\n%s\n"
    ) % (server, listener, upstream, route, extra)


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text))


def problems(text: str):
    with pytest.raises(ConfigError) as raised:
        parse(text)
    return raised.value.problems
