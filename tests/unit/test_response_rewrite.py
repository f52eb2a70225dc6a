"""
Tests for L{txrevproxy.routing.response_rewrite}: when a route's responses
are rewritten, the default and explicit rules for Location,
Content-Location and Refresh, relative references, and the Set-Cookie
attribute rules (with properties of its parser).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.routing.response_rewrite import ResponseRewrite, replace_prefix
from txrevproxy.routing.rewrite import PathRewrite

from ..support.configs import document, parse, problems
from ..support.rewrite_requests import request

BACKEND = 'servers = [{ url = "http://127.0.0.1:9001" }, { url = "http://backend.internal" }]'


def rewrite_of(keys: str, upstream: str = BACKEND):
    """
    The L{ResponseRewrite} of a route to upstream C{app} with C{keys}, as
    the assembly builds it.
    """
    config = parse(document(route='upstream = "app"\n' + keys, upstream=upstream))
    route = config.routes[0]
    upstream = config.upstreams["app"]
    preserve_host = upstream.preserve_host if route.preserve_host is None else route.preserve_host
    return ResponseRewrite.for_route(
        route, upstream, preserve_host, PathRewrite.for_route(route)
    )


STRIPS = 'path = "/app"\nstrip_prefix = true'
ADDS = 'add_prefix = "/app"'


@pytest.mark.parametrize(
    "keys",
    ["", "preserve_host = true", 'path = "/app"', 'redirect_rewrite = false\n' + STRIPS],
)
def test_no_rewrite_for_a_route_that_keeps_host_and_path(keys):
    assert rewrite_of(keys) is None


@pytest.mark.parametrize(
    "keys",
    [STRIPS, ADDS, "preserve_host = false", 'rewrite = { pattern = "^/a", replacement = "/b" }',
     "redirect_rewrite = true", 'cookie_path = { "/a" = "/" }'],
)
def test_a_rewrite_for_a_route_that_changes_host_or_path(keys):
    assert rewrite_of(keys) is not None


@pytest.mark.parametrize(
    "location, expected",
    [
        # The backend's own address, in each form it may be written.
        (b"http://127.0.0.1:9001/login", b"/app/login"),
        (b"HTTPS://127.0.0.1:9001/login?next=/a#top", b"/app/login?next=/a#top"),
        (b"http://backend.internal:80/x", b"/app/x"),
        (b"http://backend.internal", b"/app/"),
        (b"//backend.internal/x", b"/app/x"),
        # The Host the backend was sent (the route preserves it).
        (b"http://shop.test:8080/login", b"/app/login"),
        # A path outside the prefix gets it back; one inside is left.
        (b"/login", b"/app/login"),
        (b"/app/login", b"/app/login"),
        (b"/", b"/app/"),
        # Other hosts and schemes are not the backend's.
        (b"http://other.test/login", b"http://other.test/login"),
        (b"http://127.0.0.1:9002/login", b"http://127.0.0.1:9002/login"),
        (b"mailto:ops@example.test", b"mailto:ops@example.test"),
        (b"ftp://127.0.0.1:9001/x", b"ftp://127.0.0.1:9001/x"),
        # Relative paths: left alone while the client resolves them to the
        # same place; climbing out of the prefix gets it back.
        (b"login", b"login"),
        (b"../b/c?x#f", b"../b/c?x#f"),
        (b"../../../x?q", b"/app/x?q"),
        (b"?page=2", b"?page=2"),
        (b"", b""),
    ],
)
def test_default_rules_of_a_route_that_strips_its_prefix(location, expected):
    rewrite = rewrite_of(STRIPS)
    assert rewrite.url(location, request(b"/app/a/b/c")) == expected


@pytest.mark.parametrize(
    "location, expected",
    [
        (b"http://127.0.0.1:9001/app/login", b"/login"),
        (b"/app/login?x", b"/login?x"),
        (b"/app", b"/"),
        (b"/application", b"/application"),
        (b"/login", b"/login"),
        (b"sibling", b"sibling"),
        (b"../../../outside", b"../../../outside"),
    ],
)
def test_default_rules_of_a_route_that_adds_a_prefix(location, expected):
    rewrite = rewrite_of(ADDS)
    assert rewrite.url(location, request(b"/a/b")) == expected


def test_strip_and_add_map_one_prefix_onto_the_other():
    rewrite = rewrite_of('path = "/shop"\nstrip_prefix = true\nadd_prefix = "/legacy"')
    sent = request(b"/shop/cart")
    assert rewrite.url(b"/legacy/cart/1", sent) == b"/shop/cart/1"
    assert rewrite.url(b"/shop/cart/1", sent) == b"/shop/cart/1"
    assert rewrite.url(b"/other", sent) == b"/other"


def test_a_route_that_does_not_preserve_host_keeps_paths():
    rewrite = rewrite_of("preserve_host = false")
    sent = request(b"/a/b")
    assert rewrite.url(b"http://127.0.0.1:9001/a?b", sent) == b"/a?b"
    assert rewrite.url(b"/a", sent) == b"/a"
    # The client's Host is not what this backend was sent.
    assert rewrite.url(b"http://shop.test:8080/a", sent) == b"http://shop.test:8080/a"


def test_a_fixed_host_sent_names_the_backend_too():
    rewrite = rewrite_of(
        'preserve_host = false\nrequest_headers = { set = { Host = "App.Internal" } }'
    )
    assert rewrite.url(b"http://app.internal/x", request(b"/x")) == b"/x"


def test_explicit_rules_replace_the_default():
    rewrite = rewrite_of(
        STRIPS
        + '\nredirect_rewrite = [{ from = "http://Backend.Internal:8080/app/", to = "/" },'
        ' { from = "/old/", to = "https://new.example.test/" }]'
    )
    sent = request(b"/app/x")
    assert rewrite.url(b"http://backend.internal:8080/app/login", sent) == b"/login"
    assert rewrite.url(b"HTTP://BACKEND.INTERNAL:8080/app/x", sent) == b"/x"
    # The path part of a rule matches as written.
    assert rewrite.url(b"http://backend.internal:8080/APP/x", sent) == (
        b"http://backend.internal:8080/APP/x"
    )
    assert rewrite.url(b"/old/page", sent) == b"https://new.example.test/page"
    # Without "default" nothing else is rewritten.
    assert rewrite.url(b"/login", sent) == b"/login"
    assert rewrite.url(b"http://127.0.0.1:9001/x", sent) == b"http://127.0.0.1:9001/x"


def test_explicit_rules_first_then_the_default():
    rewrite = rewrite_of(
        STRIPS + '\nredirect_rewrite = [{ from = "/special", to = "/s" }, "default"]'
    )
    sent = request(b"/app/x")
    assert rewrite.url(b"/special/1", sent) == b"/s/1"
    assert rewrite.url(b"/login", sent) == b"/app/login"


def test_apply_rewrites_location_content_location_and_refresh():
    rewrite = rewrite_of(STRIPS)
    headers = [
        (b"Location", b"http://127.0.0.1:9001/login"),
        (b"content-location", b"/page"),
        (b"Refresh", b"5; url='http://127.0.0.1:9001/next'"),
        (b"Refresh", b"3"),
        (b"Link", b"</style.css>; rel=preload"),
        (b"Set-Cookie", b"a=b; Path=/"),
    ]
    assert rewrite.apply(headers, request(b"/app/x")) == [
        (b"Location", b"/app/login"),
        (b"content-location", b"/app/page"),
        (b"Refresh", b"5; url='/app/next'"),
        (b"Refresh", b"3"),
        (b"Link", b"</style.css>; rel=preload"),
        (b"Set-Cookie", b"a=b; Path=/"),
    ]


COOKIES = (
    'cookie_domain = { "backend.internal" = "shop.example.test", "drop.test" = "" }\n'
    'cookie_path = { "/app/" = "/", "/app/admin" = "/admin" }'
)


@pytest.mark.parametrize(
    "cookie, expected",
    [
        (
            b"sid=1; Domain=backend.internal; Path=/app/; HttpOnly",
            b"sid=1; Domain=shop.example.test; Path=/; HttpOnly",
        ),
        (b"sid=1;domain=.BACKEND.internal;path=/app", b"sid=1;domain=shop.example.test;path=/"),
        (b"sid=1; Path=/app/admin/x; Secure", b"sid=1; Path=/admin/x; Secure"),
        (b"sid=1; Path=/application", b"sid=1; Path=/application"),
        (b"sid=1; Domain=drop.test; Path=/x", b"sid=1; Path=/x"),
        (b"sid=1; Domain=other.test", b"sid=1; Domain=other.test"),
        # The cookie's own value is never read as an attribute.
        (b"Path=/app/; Max-Age=5", b"Path=/app/; Max-Age=5"),
        (b"sid=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/app/x",
         b"sid=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/x"),
    ],
)
def test_cookie_rules(cookie, expected):
    rewrite = rewrite_of(COOKIES)
    assert rewrite.cookie(cookie) == expected
    assert rewrite.apply([(b"Set-Cookie", cookie)], request(b"/")) == [(b"Set-Cookie", expected)]


def test_cookie_rules_alone_leave_locations():
    rewrite = rewrite_of(COOKIES)
    assert rewrite.url(b"http://127.0.0.1:9001/x", request(b"/x")) == b"http://127.0.0.1:9001/x"


_octets = st.binary(max_size=20).map(lambda b: b.replace(b";", b""))
_attribute = st.tuples(
    st.sampled_from([b"", b" ", b"  "]),
    st.sampled_from([b"Expires", b"Max-Age", b"Secure", b"HttpOnly", b"SameSite", b"x"]),
    _octets,
)


def _cookie(value: bytes, attributes) -> bytes:
    return value + b"".join(b";%s%s=%s" % attribute for attribute in attributes)


@given(_octets, st.lists(_attribute, max_size=6))
def test_cookie_without_domain_or_path_is_kept_byte_for_byte(value, attributes):
    cookie = _cookie(value, attributes)
    assert rewrite_of(COOKIES).cookie(cookie) == cookie


@given(
    _octets,
    st.lists(_attribute, max_size=4),
    st.lists(_attribute, max_size=4),
    st.sampled_from([b"domain", b"Domain", b" DOMAIN "]),
    st.sampled_from([b"backend.internal", b".Backend.Internal", b" backend.internal "]),
    st.sampled_from([b"/app", b"/app/", b"/app/deep/er"]),
)
def test_cookie_domain_and_path_are_rewritten_wherever_they_are(
    value, before, after, domain_name, domain, path
):
    rewrite = rewrite_of(COOKIES)
    cookie = _cookie(value, before) + b";" + domain_name + b"=" + domain
    cookie += _cookie(b"", after) + b"; Path=" + path
    expected = _cookie(value, before) + b";" + domain_name.rstrip() + b"=shop.example.test"
    expected += _cookie(b"", after) + b"; Path=" + path[len(b"/app"):].rjust(1, b"/")
    assert rewrite.cookie(cookie) == expected


@given(st.lists(st.sampled_from([b"a", b"app", b"b", b"x.y", b"%41"]), max_size=4))
def test_replace_prefix_matches_whole_segments(segments):
    path = b"/" + b"/".join(segments)
    under = path == b"/app" or path.startswith(b"/app/")
    replaced = replace_prefix(path, b"/app", b"/new")
    assert (replaced is not None) == under
    if under:
        assert replaced == b"/new" + path[4:]
    assert replace_prefix(path, b"", b"/p") == (b"/p" + path if path != b"/" else b"/p/")


def test_the_keys_as_loaded():
    config = parse(
        document(
            route='upstream = "app"\n'
            'redirect_rewrite = [{ from = "http://backend.internal:8080/app/", to = "/" }, "default"]\n'
            'cookie_domain = { ".Backend.Internal" = "shop.example.test" }\n'
            'cookie_path = { "/app/" = "/", "/app/admin/" = "/admin" }'
        )
    )
    route = config.routes[0]
    assert route.redirect_rewrite.default is True
    assert [(r.source, r.to) for r in route.redirect_rewrite.rules] == [
        ("http://backend.internal:8080/app/", "/")
    ]
    assert route.cookie_domain == (("backend.internal", "shop.example.test"),)
    assert route.cookie_path == (("/app/admin", "/admin"), ("/app", "/"))


@pytest.mark.parametrize(
    "keys, problem",
    [
        ('redirect_rewrite = "yes"', 'routes[0].redirect_rewrite: expected false, true, or an array'),
        ("redirect_rewrite = []", "routes[0].redirect_rewrite: must not be empty"),
        ('redirect_rewrite = [{ from = "backend.internal/", to = "/" }]',
         'routes[0].redirect_rewrite[0].from: "backend.internal/": expected a path starting with "/"'),
        ('redirect_rewrite = [{ from = "/a" }]', "routes[0].redirect_rewrite[0].to: "),
        ('redirect_rewrite = [{ from = "/a", to = "/b c" }]', "routes[0].redirect_rewrite[0].to: expected"),
        ('redirect_rewrite = [{ from = "/a", to = "/", form = 1 }]',
         'routes[0].redirect_rewrite[0].form: unknown key; did you mean "from"?'),
        ('redirect_rewrite = ["defaults"]', "routes[0].redirect_rewrite[0]: expected"),
        ('cookie_domain = { "backend.internal" = "*.example.test" }',
         'routes[0].cookie_domain."backend.internal": "*.example.test": a cookie\'s Domain has no wildcard'),
        ('cookie_domain = { "bad name" = "x.test" }', 'routes[0].cookie_domain."bad name": '),
        ("cookie_domain = {}", "routes[0].cookie_domain: expected a table"),
        ('cookie_path = { "app/" = "/" }', 'routes[0].cookie_path."app/": a path must start with "/"'),
        ('cookie_path = { "/app/" = 1 }', 'routes[0].cookie_path."/app/": expected a path'),
    ],
)
def test_bad_keys_are_reported_with_their_key_path(keys, problem):
    found = problems(document(route='upstream = "app"\n' + keys))
    assert len(found) == 1 and found[0].startswith(problem), found


@pytest.mark.parametrize("key", ["redirect_rewrite = false", 'cookie_path = { "/a" = "/" }'])
def test_the_keys_need_an_upstream(key):
    assert problems(document(route='respond = { status = 200 }\n' + key)) == [
        "routes[0].%s: only a route with an upstream can use it" % (key.split(" ")[0],)
    ]
