"""
Tests for L{txrevproxy.routing.rewrite}: every path rewrite and header rule, and
the templates they expand (L{txrevproxy.config.variables}).
"""

from __future__ import annotations

import pytest

from txrevproxy.config.variables import Template
from txrevproxy.routing.rewrite import HeaderRewrite, PathRewrite

from ..support.rewrite_requests import request
from ..support.routes import route


@pytest.mark.parametrize(
    "keys, target, sent",
    [
        ('path = "/api"\nstrip_prefix = true', b"/api/users", b"/users"),
        ('path = "/api"\nstrip_prefix = true', b"/api", b"/"),
        ('path = "/api"\nstrip_prefix = true', b"/api/", b"/"),
        ('path = "/api"\nstrip_prefix = true', b"/api/a/?x=1&y", b"/a/?x=1&y"),
        ('path = "/api/v1"\nstrip_prefix = true', b"/api/v1/a", b"/a"),
        # Rewrites work on the normalised path.
        ('path = "/api"\nstrip_prefix = true', b"/api//x/./y/../z", b"/x/z"),
        ('path = "/api"\nstrip_prefix = true', b"/%61pi/a%2Fb", b"/a%2Fb"),
        ('path = "/"\nstrip_prefix = true', b"/a", b"/a"),
        ('add_prefix = "/v2"', b"/a?q", b"/v2/a?q"),
        ('add_prefix = "/v2"', b"/", b"/v2/"),
        ('path = "/api/"\nstrip_prefix = true\nadd_prefix = "/v2/"', b"/api/a", b"/v2/a"),
        ('path = "/api/"\nstrip_prefix = true\nadd_prefix = "/v2/"', b"/api", b"/v2/"),
        ('rewrite = { pattern = "^/old/(.*)$", replacement = "/new/$1" }', b"/old/a/b?x", b"/new/a/b?x"),
        ('rewrite = { pattern = "^/old/(.*)$", replacement = "/new/$1" }', b"/other", b"/other"),
        ('rewrite = { pattern = "(?P<n>\\\\d+)", replacement = "id-${n}" }', b"/a/42/7", b"/a/id-42/7"),
        ('rewrite = { pattern = "^/(.*)", replacement = "$1" }', b"/a", b"/a"),
        ('rewrite = { pattern = "^/p/(\\\\w+)$", replacement = "/page.php?name=$1" }', b"/p/x?lang=fr", b"/page.php?name=x&lang=fr"),
        ('rewrite = { pattern = "^/p$", replacement = "/q$$" }', b"/p", b"/q$"),
        (
            'path = "/api"\nstrip_prefix = true\nadd_prefix = "/v2"\n'
            'rewrite = { pattern = "^/v2/users/", replacement = "/v2/people/" }',
            b"/api/users/1",
            b"/v2/people/1",
        ),
    ],
)
def test_path_rewrite(keys, target, sent):
    rewrite = PathRewrite.for_route(route('upstream = "app"\n' + keys))
    assert rewrite.target(request(target)) == sent


def test_no_rewrite_object_for_a_route_without_rewriting():
    plain = route('upstream = "app"\npath = "/api"')
    assert PathRewrite.for_route(plain) is None
    assert HeaderRewrite.for_rules(plain.request_headers) is None


@pytest.mark.parametrize(
    "rules, headers, result",
    [
        (
            'remove = ["Cookie", "x-b"]',
            [(b"Host", b"h"), (b"cookie", b"1"), (b"X-A", b"a"), (b"X-B", b"b"), (b"Cookie", b"2")],
            [(b"Host", b"h"), (b"X-A", b"a")],
        ),
        (
            'set = { "X-A" = "new" }',
            [(b"Host", b"h"), (b"x-a", b"1"), (b"X-A", b"2")],
            [(b"Host", b"h"), (b"X-A", b"new")],
        ),
        (
            # A backend mapping _ to - (CGI, WSGI, PHP, Rack) reads X_Real_IP
            # as X-Real-IP: the client's copy goes with its own.
            'set = { "X-Real-IP" = "{client_ip}" }, remove = ["X-Debug"]',
            [(b"Host", b"h"), (b"X_Real_IP", b"10.0.0.1"), (b"x_debug", b"1")],
            [(b"Host", b"h"), (b"X-Real-IP", b"192.0.2.7")],
        ),
        (
            'add = { "X-A" = "more" }',
            [(b"Host", b"h"), (b"X-A", b"1")],
            [(b"Host", b"h"), (b"X-A", b"1"), (b"X-A", b"more")],
        ),
        (
            'set = { Host = "{host}.internal" }',
            [(b"Host", b"backend"), (b"X-A", b"1")],
            [(b"Host", b"shop.test.internal"), (b"X-A", b"1")],
        ),
        (
            'set = { "X-Vars" = "{client_ip} {scheme} {method} {request_id} {path} {query} {uri} {{x}}" }',
            [],
            [(b"X-Vars", b"192.0.2.7 https GET 0123456789abcdef /a b=1 /a?b=1 {x}")],
        ),
    ],
)
def test_header_rules(rules, headers, result):
    rewrite = HeaderRewrite.for_rules(
        route('upstream = "app"\nrequest_headers = { %s }' % (rules,)).request_headers
    )
    assert rewrite.apply(headers, request(b"/a?b=1")) == result


def test_template_without_variables_is_one_literal():
    assert Template.parse("a {{b}} c").parts == (b"a {b} c",)
    assert Template.parse("").parts == ()
