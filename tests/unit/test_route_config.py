"""
Tests for the keys of a C{[[routes]]} table (L{txrevproxy.config.routes}):
matchers, rewriting, redirects, fixed responses and error pages, and the
problems reported with their key paths.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from txrevproxy.config import ConfigError, load_config
from txrevproxy.config.model import (
    ErrorPage,
    HeaderRules,
    Redirect,
    Respond,
    ValueMatch,
)
from txrevproxy.config.variables import Template

from ..support.configs import document, problems
from ..support.processes import SOURCE_ROOT
from ..support.routes import route


@pytest.mark.parametrize(
    "text, get, value",
    [
        ('upstream = "app"\nmethods = ["get", "HEAD", "GET"]', lambda r: r.methods, ("GET", "HEAD")),
        (
            'upstream = "app"\nheaders = { "X-Env" = "beta", "Accept" = { present = true } }',
            lambda r: r.headers,
            (("accept", ValueMatch("present")), ("x-env", ValueMatch("exact", "beta"))),
        ),
        (
            'upstream = "app"\nheaders = { "Authorization" = { present = false } }',
            lambda r: r.headers,
            (("authorization", ValueMatch("absent")),),
        ),
        (
            'upstream = "app"\nquery = { v = { regex = "^[12]$" } }',
            lambda r: r.query,
            (("v", ValueMatch("regex", pattern=re.compile("^[12]$"))),),
        ),
        ('upstream = "app"\npriority = -3', lambda r: r.priority, -3),
        ('upstream = "app"\nstrip_prefix = true', lambda r: r.strip_prefix, True),
        ('upstream = "app"\nadd_prefix = "/v2/"', lambda r: r.add_prefix, "/v2"),
        ('upstream = "app"\npath = "/%7Euser/"', lambda r: r.path, "/~user"),
        (
            'upstream = "app"\nrewrite = { pattern = "^/old/(.*)", replacement = "/new/$1$$" }',
            lambda r: (r.rewrite.pattern.pattern, r.rewrite.replacement, r.rewrite.expansion),
            (b"^/old/(.*)", "/new/$1$$", b"/new/\\g<1>$"),
        ),
        (
            'upstream = "app"\nrewrite = { pattern = "^/(?P<x>a)\\\\d", replacement = "/${x}\\\\" }',
            lambda r: r.rewrite.expansion,
            b"/\\g<x>\\\\",
        ),
        (
            'upstream = "app"\nrequest_headers = { set = { Host = "{host}", "X-Id" = "{request_id}" }, add = { Via = "x" }, remove = ["Cookie"] }',
            lambda r: r.request_headers,
            HeaderRules(
                set=(("Host", Template.parse("{host}")), ("X-Id", Template.parse("{request_id}"))),
                add=(("Via", Template.parse("x")),),
                remove=("Cookie",),
            ),
        ),
        (
            'redirect = { to = "https://{host}{uri}", status = 308 }',
            lambda r: (r.upstream, r.redirect),
            (None, Redirect(Template.parse("https://{host}{uri}"), 308)),
        ),
        ('redirect = { to = "/new" }', lambda r: r.redirect.status, 302),
        (
            'respond = { status = 503, body = "down" }',
            lambda r: r.respond,
            Respond(503, "down", "text/plain; charset=utf-8"),
        ),
        ("respond = {}", lambda r: r.respond, Respond(200, "", "text/plain; charset=utf-8")),
        (
            'respond = { status = 204 }\nresponse_headers = { set = { "Cache-Control" = "no-store" } }',
            lambda r: r.response_headers.set[0][0],
            "Cache-Control",
        ),
    ],
)
def test_route_key(text, get, value):
    assert get(route(text)) == value


@pytest.mark.parametrize(
    "text, expected",
    [
        ('upstream = "app"\nmethods = []', ["routes[0].methods: must not be empty"]),
        ('upstream = "app"\nmethods = ["GET /"]', ['routes[0].methods[0]: expected a method such as "GET", got "GET /"']),
        ('upstream = "app"\nheaders = { "X Env" = "a" }', ['routes[0].headers."X Env": expected a header name such as "X-Client-Subject", got "X Env"']),
        ('upstream = "app"\nheaders = { "X-Env" = 1 }', ['routes[0].headers.X-Env: expected a value such as "beta", { regex = "^Mozilla" } or { present = true }, got 1']),
        (
            'upstream = "app"\nheaders = { "User-Agent" = { regex = "(" } }',
            ['routes[0].headers.User-Agent.regex: invalid regular expression "(": missing ), unterminated subpattern at position 0'],
        ),
        ('upstream = "app"\nheaders = { "A" = { present = "yes" } }', ['routes[0].headers.A.present: expected true or false, got "yes"']),
        ('upstream = "app"\nquery = {}', ['routes[0].query: expected a table such as { "version" = "2" }, got a table']),
        ('upstream = "app"\nquery = { "" = "x" }', ['routes[0].query."": a query parameter needs a name']),
        ('upstream = "app"\npriority = "high"', ['routes[0].priority: expected an integer, got "high"']),
        ('upstream = "app"\nadd_prefix = "v2"', ['routes[0].add_prefix: a path must start with "/", got "v2"']),
        ('upstream = "app"\npath = "/a%zz"', ['routes[0].path: "/a%zz": a % must start an escape such as %2F']),
        ('upstream = "app"\npath = "/a/%2e%2e"', ['routes[0].path: "/a/%2e%2e": "." and ".." segments are not allowed']),
        (
            'upstream = "app"\nrewrite = { pattern = "[", replacement = "/" }',
            ['routes[0].rewrite.pattern: invalid regular expression "[": unterminated character set at position 0'],
        ),
        (
            'upstream = "app"\nrewrite = { pattern = "^/(a)", replacement = "/$2${x}" }',
            [
                "routes[0].rewrite.replacement: $2: the pattern has 1 groups",
                "routes[0].rewrite.replacement: ${x}: the pattern has no such group",
            ],
        ),
        ('upstream = "app"\nrewrite = { pattern = "^/a" }', ["routes[0].rewrite.replacement: required key is missing"]),
        (
            'upstream = "app"\nrequest_headers = { set = { "X-A" = "{nope}" } }',
            [
                'routes[0].request_headers.set.X-A: "{nope}": unknown variable {nope} (known: '
                "{client_ip}, {host}, {method}, {path}, {query}, {request_id}, {scheme}, {uri})"
            ],
        ),
        (
            'upstream = "app"\nrequest_headers = { add = { "Content-Length" = "1", Host = "x" }, remove = ["Host"] }',
            [
                "routes[0].request_headers.add.Content-Length: the proxy writes Content-Length itself",
                "routes[0].request_headers.add.Host: a request has exactly one Host: use set",
                "routes[0].request_headers.remove.Host: a request has exactly one Host: use set",
            ],
        ),
        (
            'upstream = "app"\nresponse_headers = { set = { "Transfer-Encoding" = "x" }, bogus = 1 }',
            ['routes[0].response_headers.bogus: unknown key (known keys: add, remove, set)'],
        ),
        (
            'upstream = "app"\nresponse_headers = { set = { "Connection" = "x" } }',
            ["routes[0].response_headers.set.Connection: the proxy writes Connection itself"],
        ),
        ('redirect = { to = "" }', ["routes[0].redirect.to: must not be empty"]),
        ('redirect = { to = "/x", status = 200 }', ["routes[0].redirect.status: expected one of 301, 302, 303, 307, 308, got 200"]),
        ('respond = { status = 100 }', ["routes[0].respond.status: expected a status from 200 to 599, got 100"]),
        ('respond = { status = 304, body = "x" }', ["routes[0].respond.body: a 304 response has no body"]),
        (
            'upstream = "app"\nrespond = { status = 503 }',
            ["routes[0].respond: a route has exactly one of upstream, upstreams, redirect or respond; this one also has upstream"],
        ),
        (
            'respond = {}\nstrip_prefix = true\npreserve_host = true\nerror_pages = { 502 = "x.html" }',
            [
                "routes[0].preserve_host: only a route with an upstream can use it",
                "routes[0].strip_prefix: only a route with an upstream can use it",
                "routes[0].error_pages: only a route with an upstream can use it",
            ],
        ),
        (
            'upstream = "app"\nerror_pages = { 302 = "x.html" }',
            ["routes[0].error_pages.302: expected a status from 400 to 599, got 302"],
        ),
        (
            'upstream = "app"\nerror_pages = { oops = "x.html" }',
            ["routes[0].error_pages.oops: expected a status code, got \"oops\""],
        ),
        (
            'upstream = "app"\nintercept_errors = [500, 200]',
            ["routes[0].intercept_errors[1]: expected a status from 400 to 599, got 200"],
        ),
        (
            'upstream = "app"\nintercept_errors = []',
            ["routes[0].intercept_errors: must not be empty"],
        ),
        (
            'upstream = "app"\nname = "2nd"',
            [
                'routes[0].name: expected a name of letters, digits, "_", "." and "-" '
                'that does not start with a digit, got "2nd"'
            ],
        ),
        (
            'upstream = "app"\nmaintenance_retry_after = "soon"',
            [
                'routes[0].maintenance_retry_after: expected a duration such as '
                '"250ms", "5s", "2m", "1h30m" or "7d", got "soon"'
            ],
        ),
        (
            'respond = { status = 200 }\nintercept_errors = [500]',
            ["routes[0].intercept_errors: only a route with an upstream can use it"],
        ),
        (
            'upstream = "app"\nfilters = ["ratelimit"]',
            ['routes[0].filters[0]: no filter named "ratelimit"'],
        ),
    ],
)


def test_route_problem(text, expected):
    assert problems(document(route=text)) == expected


def test_same_prefix_and_matchers_is_a_conflict():
    found = problems(
        document(
            route='upstream = "app"\npath = "/a"\nmethods = ["GET"]',
            extra=(
                '[[routes]]\nupstream = "app"\npath = "/a/"\nmethods = ["GET"]\npriority = 9\n'
                '[[routes]]\nupstream = "app"\npath = "/a"\nmethods = ["POST"]\n'
                '[[routes]]\nupstream = "app"\npath = "/a"\n'
            ),
        )
    )
    assert found == [
        'routes[1].path: "/a" is already routed by routes[0] with the same matchers'
    ]


def test_error_pages_are_read_when_loading(tmp_path):
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "502.html").write_bytes(b"<h1>down</h1>")
    (tmp_path / "errors" / "504.json").write_bytes(b'{"error": "timeout"}')
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            route='upstream = "app"\nerror_pages = { 502 = "errors/502.html", 504 = "errors/504.json" }'
        )
    )
    pages = load_config(str(path)).routes[0].error_pages
    assert pages == (
        ErrorPage(502, str(tmp_path / "errors" / "502.html"), b"<h1>down</h1>", "text/html; charset=utf-8"),
        ErrorPage(504, str(tmp_path / "errors" / "504.json"), b'{"error": "timeout"}', "application/json"),
    )


def test_missing_error_page_is_a_problem(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(document(route='upstream = "app"\nerror_pages = { 503 = "nope.html" }'))
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    assert raised.value.problems == [
        "routes[0].error_pages.503: cannot read nope.html: No such file or directory"
    ]


def routing_examples():
    """
    The route examples of docs/routing.rst: every literal block that has a
    [[routes]] table.
    """
    text = (SOURCE_ROOT / "docs" / "routing.rst").read_text()
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
    return [
        textwrap.dedent(block) for block in blocks if block.lstrip().startswith("[[routes]]")
    ]


@pytest.mark.parametrize("example", routing_examples())
def test_routing_page_examples_are_valid(tmp_path, example):
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "50x.html").write_text("<p>later</p>")
    path = tmp_path / "proxy.toml"
    path.write_text(
        '[listeners.web]\nendpoint = "tcp:8080"\n'
        + "".join(
            '[upstreams.%s]\nservers = [{ url = "http://127.0.0.1:%d" }]\n' % (name, 9001 + n)
            for n, name in enumerate(["app", "api", "app_beta"])
        )
        + example
    )
    assert load_config(str(path)).routes


def test_there_are_routing_examples():
    assert len(routing_examples()) >= 9
