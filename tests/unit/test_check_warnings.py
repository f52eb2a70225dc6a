"""
Tests for the warnings of C{txrevproxy check}: routes that can never match
(L{txrevproxy.routing.shadows}, read off the router's own trees), tables
nothing uses (L{txrevproxy.tools.lint}), and C{--strict}.
"""

from __future__ import annotations

import os

import pytest

from txrevproxy.config.model import Route
from txrevproxy.routing.shadows import shadowed_routes
from txrevproxy.tools.lint import check_warnings

from ..support.commands import run
from ..support.configs import parse

HEAD = """
[listeners.web]
endpoint = "tcp:8080"
[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]
"""


def shadows(routes: str):
    """
    The shadowed routes of C{[[routes]]} tables (each forwarding to C{app}
    unless it says otherwise): C{{index: [indexes of the routes that take
    its requests]}}.
    """
    config = parse(HEAD + routes)
    return {
        route.index: [taker.index for taker, _ in takers]
        for route, takers in shadowed_routes(config.routes)
    }


def routes(*tables: str) -> str:
    return "".join('[[routes]]\nupstream = "app"\n%s\n' % (table,) for table in tables)


CASES = [
    pytest.param(
        routes('path = "/api/"', 'path = "/api/"\nmethods = ["GET"]\npriority = -1'),
        {1: [0]},
        id="same path, the later one with matchers but a lower priority",
    ),
    pytest.param(
        routes('path = "/"', 'path = "/api/"'),
        {},
        id="broader prefix earlier: the longest prefix is tried first",
    ),
    pytest.param(
        routes('path = "/api/"', 'path = "/api/v1/"\npriority = -5'),
        {},
        id="longer prefix later with a lower priority: still tried first",
    ),
    pytest.param(
        routes('host = "*.example.test"', 'host = "shop.example.test"'),
        {},
        id="wildcard host earlier: the exact host is tried first",
    ),
    pytest.param(
        routes('priority = 1', 'host = "shop.example.test"'),
        {1: [0]},
        id="any host earlier with a higher priority",
    ),
    pytest.param(
        routes('host = "shop.example.test"', 'host = "*.example.test"'),
        {},
        id="exact host earlier: the wildcard's other hosts still reach it",
    ),
    pytest.param(
        routes('host = "shop.example.test"', ""),
        {},
        id="narrower host earlier",
    ),
    pytest.param(
        routes(
            'host = "shop.example.test"\npriority = 1',
            'host = ["shop.example.test", "b.test"]\nmethods = ["GET"]',
        ),
        {},
        id="one of two hosts covered",
    ),
    pytest.param(
        routes('priority = 1', 'host = ["shop.example.test", "b.test"]'),
        {1: [0]},
        id="every host covered",
    ),
    pytest.param(
        routes(
            'host = "a.test"\npriority = 1',
            'host = "b.test"\npriority = 1',
            'host = ["a.test", "b.test"]\nmethods = ["GET"]',
        ),
        {2: [0, 1]},
        id="each host covered by another route",
    ),
    pytest.param(
        routes('methods = ["GET", "POST"]', 'methods = ["GET"]\npriority = -1'),
        {},
        id="method superset earlier: matchers never shadow",
    ),
    pytest.param(
        routes('priority = 1', 'methods = ["GET"]'),
        {1: [0]},
        id="method subset behind a route without matchers tried first",
    ),
    pytest.param(
        routes("", 'methods = ["GET"]'),
        {},
        id="matchers before no matchers on the same path and host",
    ),
    pytest.param(
        routes('headers = { "X-Beta" = "present" }', ""),
        {},
        id="header matcher earlier",
    ),
    pytest.param(
        routes('priority = 2', 'query = { debug = "1" }\npriority = 1'),
        {1: [0]},
        id="query matcher behind a higher priority",
    ),
]


@pytest.mark.parametrize("tables, expected", CASES)
def test_shadowed_routes(tables, expected):
    assert shadows(tables) == expected


def test_exact_duplicate_is_shadowed_by_the_first_in_the_file():
    """
    Two routes for the same requests (a configuration refuses them; the
    analysis still says which wins, and why).
    """
    first, second = Route(0, "app", "/api"), Route(1, "app", "/api")
    [(route, takers)] = shadowed_routes([first, second])
    assert route is second
    assert takers == ((first, "routes[0] comes first in the file"),)


def test_shadow_warning_names_the_taker_and_why():
    config = parse(
        HEAD + routes('path = "/api/"\npriority = 3', 'path = "/api/"\nmethods = ["GET"]')
    )
    assert check_warnings(config) == [
        'routes[1]: never matches: routes[0] (path "/api") takes every '
        "request it would: routes[0] has a higher priority (3 > 0)"
    ]


def test_unused_tables_are_warned_about():
    config = parse(
        HEAD
        + """
[upstreams.spare]
servers = [{ url = "http://127.0.0.1:9002" }]
[filters.headers]
type = "security_headers"
[filters.listened]
type = "security_headers"
[filters.routed]
type = "security_headers"
[caches.pages]
[listeners.web2]
endpoint = "tcp:8081"
filters = ["listened"]
[[routes]]
upstream = "app"
filters = ["routed"]
"""
    )
    assert check_warnings(config) == [
        "upstreams.spare: unused: no route names it",
        "filters.headers: unused: no route or listener names it",
        "caches.pages: unused: no route names it",
    ]


def test_used_tables_are_not_warned_about():
    config = parse(
        HEAD
        + """
[caches.pages]
[[routes]]
upstream = "app"
cache = "pages"
"""
    )
    assert check_warnings(config) == []


def write(directory, name: str, text: str) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w") as file:
        file.write(text)
    return path


SPARE = '[upstreams.spare]\nservers = [{ url = "http://127.0.0.1:9002" }]\n'


def test_check_prints_warnings_and_exits_0(tmp_path):
    path = write(tmp_path, "proxy.toml", HEAD + SPARE + routes(""))
    status, out, err = run(["check", "--config", path])
    assert (status, err) == (0, "")
    assert out.splitlines()[1:] == ["warning: upstreams.spare: unused: no route names it"]


def test_strict_check_exits_1_on_a_warning(tmp_path):
    path = write(tmp_path, "proxy.toml", HEAD + SPARE + routes(""))
    status, out, _ = run(["check", "--strict", "--config", path])
    assert status == 1
    assert "warning: upstreams.spare: unused: no route names it" in out


def test_strict_check_exits_0_without_warnings(tmp_path):
    path = write(tmp_path, "proxy.toml", HEAD + routes(""))
    status, out, _ = run(["check", "--strict", "--config", path])
    assert status == 0
    assert "warning" not in out
