"""
Route matchers as plugins: the built-in C{methods}, C{headers} and C{query}
types are installed plugins, and a third-party matcher type, installed from
a temporary directory on the plugin path, is used by name in a route's
C{match} table: the complete example of C{docs/routing.rst}, taken from the
document itself so that it cannot go stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from txrevproxy.config import ConfigError
from txrevproxy.config.model import MatcherConfig
from txrevproxy.interfaces import IMatcher, IMatcherType
from txrevproxy.plugins import matcher_types
from txrevproxy.routing.router import Candidate, build_router
from txrevproxy.routing.shadows import shadowed_routes
from txrevproxy.tools.explain import describe_route

from ..support.configs import document, parse, problems
from ..support.doc_blocks import literal_block
from ..support.doc_examples import check_with_plugins, example_files, installed_example
from ..support.processes import proxy_modules_imported_by
from ..support.routing_requests import request

BUILT_IN = ["headers", "methods", "query"]


def test_importing_the_matcher_plugins_imports_only_the_interfaces():
    """
    twistd imports every plugin module to list its commands: the module of
    the built-in matchers brings in no reactor and no proxy code.
    """
    assert proxy_modules_imported_by("twisted.plugins.txrevproxy_matchers") == [
        "txrevproxy",
        "txrevproxy.interfaces",
    ]


@pytest.mark.parametrize(
    "name, value, settings, description",
    [
        ("methods", ["get", "HEAD"], ("GET", "HEAD"), "method is GET or HEAD"),
        ("headers", {"X-Env": "beta"}, None, 'header x-env = "beta"'),
        ("query", {"v": {"present": True}}, None, "query v present"),
    ],
)
def test_built_in_matcher_types_are_plugins(name, value, settings, description):
    assert sorted(matcher_types()) == BUILT_IN
    kind = matcher_types()[name]
    assert verifyObject(IPlugin, kind)
    assert verifyObject(IMatcherType, kind)
    assert kind.name == name
    made = kind.configure(value)
    if settings is not None:
        assert made == settings
    [matcher] = kind.matchers(made)
    assert verifyObject(IMatcher, matcher)
    assert matcher.description == description


def test_a_built_in_type_in_match_is_the_same_as_its_key():
    by_key = parse(document(route='upstream = "app"\nmethods = ["GET"]'))
    in_match = parse(document(route='upstream = "app"\nmatch = { methods = ["get"] }'))
    assert in_match.routes[0].matchers == by_key.routes[0].matchers
    assert by_key.routes[0].matchers == (MatcherConfig("methods", ("GET",)),)


def test_built_in_matcher_problems_have_the_key_path_of_match():
    assert problems(document(route='upstream = "app"\nmatch = { methods = ["GET /"] }')) == [
        'routes[0].match.methods[0]: expected a method such as "GET", got "GET /"'
    ]


def test_an_unknown_matcher_type_names_the_installed_ones():
    assert problems(document(route='upstream = "app"\nmatch = { cookie = { beta = "yes" } }')) == [
        'routes[0].match.cookie: unknown matcher type "cookie"; '
        'installed types: "headers", "methods", "query"'
    ]


def test_an_empty_match_table_is_refused():
    assert problems(document(route='upstream = "app"\nmatch = {}')) == [
        'routes[0].match: expected a table such as { cookie = { beta = "yes" } }, got a table'
    ]


@pytest.fixture
def plugin_directory(tmp_path: Path):
    """
    A directory holding the example matcher, on the Python path and on the
    plugin path for the length of the test.
    """
    files = example_files("routing.rst")
    assert set(files) == {
        "cookie_matcher/__init__.py",
        "twisted/plugins/cookie_matcher_plugin.py",
        "setup.cfg",
    }
    modules = ["cookie_matcher", "twisted.plugins.cookie_matcher_plugin"]
    with installed_example(files, tmp_path, modules) as directory:
        yield directory


#: The route of docs/routing.rst that uses the example matcher, after the
#: upstream it names.
BETA = '[upstreams.app_beta]\nservers = [{ url = "http://127.0.0.1:9002" }]\n' + (
    literal_block("routing.rst", "[[routes]]", "match = { cookie")
)


def test_a_plugin_matcher_is_used_by_name(plugin_directory):
    """
    The route with the plugin's matcher comes after a route without
    matchers in the file, but is tried first, and wins only the requests
    that carry the cookie.
    """
    assert verifyObject(IMatcherType, matcher_types()["cookie"])
    config = parse(document(extra=BETA))
    assert config.routes[1].upstream == "app_beta"
    assert config.routes[1].match == (MatcherConfig("cookie", (("beta", "yes"),)),)
    router = build_router(config.routes, lambda route: route)

    def chosen(*headers):
        result = router.select(request(b"/shop", headers=headers))
        assert isinstance(result, Candidate)
        return result.route.index

    assert chosen((b"Cookie", b"session=1; beta=yes")) == 1
    assert chosen((b"Cookie", b"beta=no")) == 0
    assert chosen() == 0
    [matcher] = router.select(request(b"/", headers=[(b"Cookie", b"beta=yes")])).matchers.parts
    assert verifyObject(IMatcher, matcher)


def test_txrevproxy_route_says_why_a_plugin_matcher_did_not_match(plugin_directory):
    router = build_router(parse(document(extra=BETA)).routes, lambda route: route)
    explanation = router.explain(request(b"/"))
    assert explanation.chosen.route.index == 0
    assert [reason for _, reason in explanation.others] == [
        'does not match: cookie beta = "yes"'
    ]


def test_txrevproxy_route_names_a_plugin_matcher_in_the_route_line(plugin_directory):
    route = parse(document(extra=BETA)).routes[1]
    assert describe_route(route) == (
        'routes[1] (path "/", match cookie) -> upstream "app_beta"'
    )


def test_its_problems_have_key_paths(plugin_directory):
    assert problems(
        document(route='upstream = "app"\nmatch = { cookie = { beta = 1, alpha = "yes" } }')
    ) == ["routes[0].match.cookie.beta: expected a string"]


def test_routes_with_the_same_plugin_matchers_are_refused(plugin_directory):
    with pytest.raises(ConfigError) as raised:
        parse(document(route='upstream = "app"\nmatch = { cookie = { beta = "yes" } }', extra=BETA))
    assert raised.value.problems == [
        'routes[1].path: "/" is already routed by routes[0] with the same matchers'
    ]


def test_check_accepts_a_plugin_on_the_python_path(plugin_directory):
    """
    As an operator would: the plugin's directory on PYTHONPATH, and
    C{txrevproxy check} run in a new process.
    """
    result = check_with_plugins(plugin_directory, document(extra=BETA))
    assert result.returncode == 0, result.stderr
    assert b": OK: " in result.stdout, result.stdout


def test_a_plugin_matcher_route_is_shadowed_only_behind_one_without_matchers(
    plugin_directory,
):
    """
    C{txrevproxy check}'s analysis counts a plugin's matchers as the router
    does: the route with the cookie matcher is tried first, unless a route
    without matchers has a higher priority, which then takes its requests.
    """
    assert shadowed_routes(parse(document(extra=BETA)).routes) == []
    config = parse(document(route='upstream = "app"\npriority = 1', extra=BETA))
    [(route, takers)] = shadowed_routes(config.routes)
    assert (route.index, [taker.index for taker, _ in takers]) == (1, [0])
