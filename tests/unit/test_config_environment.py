"""
Tests for L{txrevproxy.config.environment}: C{${NAME}} and
C{${NAME:-default}} in the string values of a configuration file.
"""

from __future__ import annotations

import pytest

from txrevproxy.config import ConfigError, load_config
from txrevproxy.config.environment import escape, substitute

from ..support.configs import document


@pytest.mark.parametrize(
    "text, expected",
    [
        ("${A}", "alpha"),
        ("x-${A}-y", "x-alpha-y"),
        ("${A}${B}", "alphabeta"),
        ("${UNSET:-fallback}", "fallback"),
        ("${A:-fallback}", "alpha"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY}", ""),
        ("${UNSET:-}", ""),
        ("${UNSET:-a:b/c d}", "a:b/c d"),
        ("$${A}", "${A}"),
        ("$$${A}", "$${A}"),
        ("$1 and $$ and $x", "$1 and $$ and $x"),
        ("${DOLLAR}", "${A}"),
    ],
)
def test_string_substitution(text, expected):
    environ = {"A": "alpha", "B": "beta", "EMPTY": "", "DOLLAR": "${A}"}
    assert substitute(text, environ) == (expected, [])


def test_substitution_reaches_nested_tables_and_arrays_but_not_keys():
    value = {
        "${A}": {"list": ["${A}", {"deep": "${A}"}, 5, True]},
    }
    assert substitute(value, {"A": "a"}) == (
        {"${A}": {"list": ["a", {"deep": "a"}, 5, True]}},
        [],
    )


def test_unset_variable_is_a_problem_at_its_key_path():
    value = {"admin": {"token": "${ADMIN_TOKEN}"}, "routes": [{}, {"path": "/${P}"}]}
    substituted, problems = substitute(value, {})
    assert problems == [
        (".admin.token", "environment variable ADMIN_TOKEN is not set"),
        (".routes[1].path", "environment variable P is not set"),
    ]
    assert substituted == value


@pytest.mark.parametrize("text", ["${", "a ${1}", "${A B}", "${A:default}", "${}"])
def test_malformed_reference_is_a_problem_naming_the_escape(text):
    _, problems = substitute({"key": text}, {"A": "a"})
    assert len(problems) == 1
    path, message = problems[0]
    assert path == ".key"
    assert "write $${ for a literal ${" in message


def test_load_config_substitutes_from_the_given_environment(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            listener='endpoint = "tcp:${PORT:-8080}:interface=127.0.0.1"',
            extra='[admin]\ntoken = "${ADMIN_TOKEN}"',
        )
    )
    config = load_config(str(path), environ={"ADMIN_TOKEN": "s3cret", "PORT": "9999"})
    assert config.admin.token == "s3cret"
    assert config.listeners["web"].endpoint == "tcp:9999:interface=127.0.0.1"
    assert load_config(str(path), environ={"ADMIN_TOKEN": "t"}).listeners[
        "web"
    ].endpoint == "tcp:8080:interface=127.0.0.1"


def test_rewrite_replacement_groups_are_not_variables():
    """
    A route's rewrite replacement keeps its own C{${1}} and C{${name}}
    group references, as it had before variables existed, even when a
    variable of that name is set.
    """
    value = {
        "routes": [
            {"rewrite": {"pattern": "^/(?P<id>x)$", "replacement": "/${id}/${1}/$1"}},
            {"path": "/${id}"},
        ]
    }
    substituted, problems = substitute(value, {"id": "ENV"})
    assert problems == []
    assert substituted["routes"][0]["rewrite"]["replacement"] == "/${id}/${1}/$1"
    assert substituted["routes"][1]["path"] == "/ENV"


def test_rewrite_with_named_group_loads_as_written(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            route='upstream = "app"\nrewrite = { pattern = "^/u/(?P<id>[0-9]+)$", replacement = "/users/${id}" }'
        )
    )
    route = load_config(str(path), environ={}).routes[0]
    assert route.rewrite.replacement == "/users/${id}"


def test_unset_variable_is_reported_with_every_other_problem_and_only_once(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            route='upstream = "${UPSTREAM}"',
            extra='[admin]\ntoken = "${ADMIN_TOKEN}"\nendpoint = 5',
        )
    )
    with pytest.raises(ConfigError) as raised:
        load_config(str(path), environ={})
    assert raised.value.problems == [
        "routes[0].upstream: environment variable UPSTREAM is not set",
        "admin.token: environment variable ADMIN_TOKEN is not set",
        'admin.endpoint: expected a server endpoint description such as "tcp:8080", got 5',
    ]


def test_load_config_reads_the_process_environment_by_default(tmp_path, monkeypatch):
    path = tmp_path / "proxy.toml"
    path.write_text(document(extra='[admin]\ntoken = "${TXREVPROXY_TEST_TOKEN}"'))
    monkeypatch.setenv("TXREVPROXY_TEST_TOKEN", "from-env")
    assert load_config(str(path)).admin.token == "from-env"


@pytest.mark.parametrize("text", ["${A}", "$${A}", "$$${A}", "a$b${", "${A:-x}$"])
def test_escaped_text_substitutes_to_itself(text):
    assert substitute(escape(text), {"A": "alpha"}) == (text, [])
