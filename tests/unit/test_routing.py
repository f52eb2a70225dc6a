"""
Tests for L{txrevproxy.routing.router}, L{txrevproxy.http.target} and
L{txrevproxy.routing.redirects}: which route a request gets (host, longest prefix,
matchers, priority and ties), what answers when none does, path
normalisation against attempts to dodge a route, and the answers routes
give without a backend.
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from txrevproxy.app.assembly import build_root
from txrevproxy.config import parse_config
from txrevproxy.config.model import ServerSettings
from txrevproxy.http.target import normalize_path
from txrevproxy.routing.router import Candidate, build_router
from txrevproxy.server.answers import respond_with_error
from txrevproxy.server.site import ProxySite
from txrevproxy.tools.explain import replay

from ..support.routing_requests import request

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def router(routes: str):
    """
    A router for C{[[routes]]} tables written in TOML; each route's
    resource is the route itself.
    """
    text = (
        '[listeners.web]\nendpoint = "tcp:8080"\n'
        '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:9001" }]\n' + routes
    )
    config = parse_config(tomllib.loads(text))
    return build_router(config.routes, lambda route: route)


def chosen(routes, *args, **kwargs):
    """
    The index of the route chosen for a request, or the status answered.
    """
    result = routes.select(request(*args, **kwargs))
    return result.route.index if isinstance(result, Candidate) else result


HOSTS_AND_PREFIXES = router(
    """
    [[routes]]
    upstream = "app"

    [[routes]]
    path = "/api"
    upstream = "app"

    [[routes]]
    path = "/api/v1"
    upstream = "app"

    [[routes]]
    host = "shop.example.test"
    upstream = "app"

    [[routes]]
    host = "*.example.test"
    path = "/static"
    upstream = "app"

    [[routes]]
    host = ["admin.example.test", "admin.example.org"]
    path = "/api"
    upstream = "app"

    [[routes]]
    host = "*.example.test"
    path = "/api"
    upstream = "app"
    """
)


@pytest.mark.parametrize(
    "target, host, expected",
    [
        # Host-less routes: longest whole-segment prefix.
        (b"/", b"other.test", 0),
        (b"/apix", b"other.test", 0),
        (b"/api", b"other.test", 1),
        (b"/api/", b"other.test", 1),
        (b"/api/v2", b"other.test", 1),
        (b"/api/v1/users?x=1", b"other.test", 2),
        # An exact host's own route wins at its prefix; longer host-less
        # prefixes still win over it.
        (b"/", b"shop.example.test", 3),
        (b"/cart", b"shop.example.test", 3),
        (b"/api/v1/x", b"shop.example.test", 2),
        # Wildcard routes apply to the exact host's requests too.
        (b"/static/a.css", b"shop.example.test", 4),
        # Host compared without port, case and trailing dot.
        (b"/", b"SHOP.example.test.:8080", 3),
        # A wildcard covers one label only.
        (b"/static/x", b"a.example.test", 4),
        (b"/static/x", b"a.b.example.test", 0),
        (b"/static/x", b"example.test", 0),
        # At the same prefix: exact host before wildcard before any host.
        (b"/api/x", b"admin.example.test", 5),
        (b"/api/x", b"admin.example.org", 5),
        (b"/api/x", b"www.example.test", 6),
        (b"/api/x", b"other.test", 1),
    ],
)
def test_host_then_longest_prefix(target, host, expected):
    assert chosen(HOSTS_AND_PREFIXES, target, host) == expected


def test_unknown_host_is_421_without_a_host_less_route():
    routes = router(
        """
        [[routes]]
        host = "example.test"
        upstream = "app"
        """
    )
    assert chosen(routes, b"/", b"example.test") == 0
    assert chosen(routes, b"/", b"other.test") == 421
    assert chosen(routes, b"/", b"sub.example.test") == 421


def test_no_route_for_the_path_is_404():
    routes = router(
        """
        [[routes]]
        path = "/api"
        upstream = "app"

        [[routes]]
        host = "example.test"
        path = "/shop"
        upstream = "app"
        """
    )
    assert chosen(routes, b"/other", b"unknown.test") == 404
    assert chosen(routes, b"/other", b"example.test") == 404
    assert chosen(routes, b"/api", b"example.test") == 0


@pytest.mark.parametrize(
    "host", [b"a b", b"evil.test/x", b"a@b", b"a\\b", b"\xff"]
)
def test_invalid_host_is_400(host):
    assert chosen(router('[[routes]]\nupstream = "app"'), b"/", host) == 400


MATCHERS = router(
    """
    [[routes]]
    upstream = "app"

    [[routes]]
    path = "/api"
    upstream = "app"

    [[routes]]
    path = "/api"
    methods = ["POST", "put"]
    upstream = "app"

    [[routes]]
    path = "/api"
    headers = { "X-Env" = "beta" }
    upstream = "app"

    [[routes]]
    path = "/api"
    headers = { "User-Agent" = { regex = "Mobile" }, "X-Env" = "beta" }
    upstream = "app"

    [[routes]]
    path = "/api"
    query = { version = "2" }
    upstream = "app"

    [[routes]]
    path = "/api/v1"
    headers = { "X-Debug" = { present = true } }
    upstream = "app"

    [[routes]]
    path = "/api/v1"
    headers = { "Authorization" = { present = false } }
    query = { lang = { regex = "^(en|fr)$" } }
    upstream = "app"
    """
)


@pytest.mark.parametrize(
    "method, target, headers, expected",
    [
        (b"GET", b"/api", [], 1),
        (b"POST", b"/api", [], 2),
        (b"PUT", b"/api", [], 2),
        (b"DELETE", b"/api", [], 1),
        (b"GET", b"/api", [(b"x-env", b"beta")], 3),
        (b"GET", b"/api", [(b"X-Env", b"prod")], 1),
        (b"GET", b"/api", [(b"X-Env", b"Beta")], 1),
        # A header with several fields matches when one of them does.
        (b"GET", b"/api", [(b"X-Env", b"prod"), (b"X-Env", b"beta")], 3),
        # More matchers before fewer.
        (b"GET", b"/api", [(b"X-Env", b"beta"), (b"User-Agent", b"x Mobile y")], 4),
        (b"GET", b"/api", [(b"User-Agent", b"Mobile")], 1),
        (b"GET", b"/api?version=2", [], 5),
        (b"GET", b"/api?a=1&version=2", [], 5),
        (b"GET", b"/api?version=%32", [], 5),
        (b"GET", b"/api?version=3", [], 1),
        (b"GET", b"/api?xversion=2", [], 1),
        # Fewer matchers, but the method matcher wins over query: one each,
        # file order.
        (b"POST", b"/api?version=2", [], 2),
        (b"GET", b"/api/v1/x", [(b"X-Debug", b"")], 6),
        (b"GET", b"/api/v1/x?lang=fr", [], 7),
        (b"GET", b"/api/v1/x?lang=fr", [(b"Authorization", b"x")], 1),
        # When no route of the longest prefix matches, shorter prefixes
        # are tried, with their own matchers.
        (b"GET", b"/api/v1/x?lang=de", [(b"X-Env", b"beta")], 3),
        (b"POST", b"/api/v1/x", [], 2),
        (b"GET", b"/other", [(b"X-Env", b"beta")], 0),
    ],
)
def test_matchers(method, target, headers, expected):
    assert chosen(MATCHERS, target, method=method, headers=headers) == expected


PRIORITIES = router(
    """
    [[routes]]
    path = "/a"
    host = "example.test"
    upstream = "app"

    [[routes]]
    path = "/a"
    upstream = "app"
    priority = 5

    [[routes]]
    path = "/a"
    methods = ["GET"]
    upstream = "app"

    [[routes]]
    path = "/a"
    headers = { "X-A" = "1" }
    upstream = "app"

    [[routes]]
    path = "/a/b"
    upstream = "app"
    priority = -5

    [[routes]]
    path = "/a"
    headers = { "X-A" = "1" }
    methods = ["DELETE"]
    upstream = "app"
    priority = -1
    """
)


@pytest.mark.parametrize(
    "method, target, headers, expected",
    [
        # Priority first: the host-less route 1 beats the exact host.
        (b"GET", b"/a", [], 1),
        # Priority never lets a shorter prefix beat a longer one.
        (b"GET", b"/a/b", [], 4),
        # Two routes with one matcher each at priority 0: the file decides.
        (b"GET", b"/a", [(b"X-A", b"1")], 1),
        (b"DELETE", b"/a", [(b"X-A", b"1")], 1),
    ],
)
def test_priority_orders_routes_of_the_same_prefix(method, target, headers, expected):
    assert chosen(PRIORITIES, target, method=method, headers=headers) == expected


@pytest.mark.parametrize(
    "routes, expected",
    [
        # Same priority: exact host, then more matchers, then file order.
        (
            """
            [[routes]]
            upstream = "app"
            [[routes]]
            upstream = "app"
            host = "*.test"
            [[routes]]
            upstream = "app"
            host = "example.test"
            """,
            2,
        ),
        (
            """
            [[routes]]
            upstream = "app"
            [[routes]]
            upstream = "app"
            methods = ["GET"]
            [[routes]]
            upstream = "app"
            methods = ["GET"]
            headers = { "Accept" = { present = true } }
            """,
            2,
        ),
        (
            """
            [[routes]]
            upstream = "app"
            methods = ["GET", "HEAD"]
            [[routes]]
            upstream = "app"
            query = { "q" = { present = false } }
            """,
            0,
        ),
        (
            """
            [[routes]]
            upstream = "app"
            priority = 1
            [[routes]]
            upstream = "app"
            priority = 2
            host = "example.test"
            [[routes]]
            upstream = "app"
            priority = 2
            host = "example.test"
            methods = ["GET"]
            """,
            2,
        ),
    ],
)
def test_ties(routes, expected):
    assert chosen(router(routes), b"/", headers=[(b"Accept", b"*/*")]) == expected


@pytest.mark.parametrize(
    "path, normalized",
    [
        (b"/", b"/"),
        (b"/a/b", b"/a/b"),
        (b"/a/b/", b"/a/b/"),
        (b"//a///b", b"/a/b"),
        (b"/a/./b", b"/a/b"),
        (b"/a/../b", b"/b"),
        (b"/a/b/..", b"/a/"),
        (b"/a/.", b"/a/"),
        (b"/../../a", b"/a"),
        (b"/a//../b", b"/b"),
        (b"/%2e%2e/a", b"/a"),
        (b"/a/%2E%2e/b", b"/b"),
        (b"/a/.%2e/b", b"/b"),
        (b"/%61%64min", b"/admin"),
        (b"/%7euser", b"/~user"),
        (b"/a%2fb", b"/a%2Fb"),
        (b"/caf%c3%a9", b"/caf%C3%A9"),
        (b"/a%20b", b"/a%20b"),
        # Refused: malformed escapes, and dot segments behind encoded
        # slashes or backslashes, which backends read differently.
        (b"/a%", None),
        (b"/a%zz", None),
        (b"/a%2", None),
        (b"/a/..%2Fadmin", None),
        (b"/a/%2e%2e%2fadmin", None),
        (b"/a%5C..%5Cadmin", None),
        (b"/a\\..\\admin", None),
    ],
)
def test_normalize_path(path, normalized):
    assert normalize_path(path) == normalized


GUARDED = router(
    """
    [[routes]]
    upstream = "app"

    [[routes]]
    path = "/admin"
    respond = { status = 403 }

    [[routes]]
    path = "/a/b"
    upstream = "app"
    """
)


@pytest.mark.parametrize(
    "target, expected",
    [
        (b"/admin", 1),
        (b"/public/../admin", 1),
        (b"/public/%2e%2e/admin/x", 1),
        (b"/public/.%2E/admin", 1),
        (b"//admin", 1),
        (b"/./admin", 1),
        (b"/%61dmin/", 1),
        (b"/admin/../public", 0),
        (b"/public/..%2Fadmin", 400),
        (b"/public/..%2fadmin", 400),
        (b"/public%2F..%2F..%2Fadmin", 400),
        # An encoded slash is data, not a separator.
        (b"/a%2Fb", 0),
        (b"/a/b%2Fc", 0),
        (b"/a/b/c%2Fd", 2),
        (b"/admin%2Fx", 0),
        (b"/bad%zz", 400),
    ],
)
def test_normalisation_attacks_do_not_dodge_a_route(target, expected):
    assert chosen(GUARDED, target) == expected


def answer(routes: str, head: bytes) -> bytes:
    """
    The bytes a router built from C{routes} answers C{head} with, when a
    route answers by itself.
    """
    config = parse_config(
        tomllib.loads(
            '[listeners.web]\nendpoint = "tcp:8080"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:9001" }]\n' + routes
        )
    )
    root = build_root(config, {}, MemoryReactorClock())
    site = ProxySite(root, reactor=MemoryReactorClock(), settings=ServerSettings())
    made, transport = replay(site, head, "127.0.0.1")
    made.renderLeaf(root)
    return re.sub(rb"X-Request-ID: \w+\r\n", b"", transport.value())


@pytest.mark.parametrize(
    "routes, head, response",
    [
        (
            '[[routes]]\nrespond = { status = 204 }',
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
        ),
        (
            '[[routes]]\nrespond = { body = "ok", content_type = "text/x" }',
            b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/x\r\nContent-Length: 2\r\n"
            b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
        ),
        (
            '[[routes]]\nrespond = { body = "ok" }\n'
            'response_headers = { set = { "Content-Type" = "text/html" }, add = { "X-Id" = "{request_id}" } }',
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: forged\r\n\r\n",
            None,
        ),
        (
            '[[routes]]\nredirect = { to = "https://{host}{uri}" }',
            b"POST /a?b HTTP/1.1\r\nHost: H.test:81\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 302 Found\r\nLocation: https://h.test/a?b\r\nContent-Length: 0\r\n"
            b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: close\r\n\r\n",
        ),
    ],
)
def test_answers_without_a_backend(routes, head, response):
    got = answer(routes, head)
    if response is not None:
        assert got == response
    else:
        # The rules' Content-Type replaces the route's, and the request ID
        # is the proxy's own (the client is not a trusted proxy).
        assert b"Content-Type: text/html\r\n" in got
        assert b"text/plain" not in got
        assert re.search(rb"X-Id: [0-9a-f]{16}\r\n", got), got
        assert got.endswith(b"\r\n\r\nok")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", ".", "..", "", "%2e", "%2E%2e", "%61", "%2F", "c.d"]),
        max_size=8,
    )
)
def test_normalisation_is_idempotent_and_leaves_no_dot_segments(segments):
    path = ("/" + "/".join(segments)).encode("ascii")
    normalized = normalize_path(path)
    if normalized is None:
        return
    assert normalize_path(normalized) == normalized
    assert b"//" not in normalized
    assert all(s not in (b".", b"..") for s in normalized.split(b"/"))
    assert b"%2e" not in normalized.lower()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["admin", "public", ".", "..", "", "%2e%2e", "%61dmin", "x"]),
        max_size=6,
    )
)
def test_a_path_is_routed_as_its_normal_form(segments):
    """
    However a path is spelt, it goes where its normal form goes: the
    guarded route cannot be reached, or avoided, by spelling.
    """
    path = ("/" + "/".join(segments)).encode("ascii")
    normalized = normalize_path(path)
    assert chosen(GUARDED, path) == chosen(GUARDED, normalized)


@pytest.mark.parametrize(
    "code, retry_after, expected",
    [
        (504, None, b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/html\r\nContent-Length: 7\r\n"),
        (
            503,
            5,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 5\r\nContent-Length: 2\r\n",
        ),
        (502, None, b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"),
    ],
)
def test_error_pages_of_the_route_replace_the_proxys(code, retry_after, expected):
    site = ProxySite(Resource(), reactor=MemoryReactorClock(), settings=ServerSettings())
    made, transport = replay(site, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1")
    made.error_pages = {504: (b"<p>slow", b"text/html"), 503: (b"{}", b"application/json")}
    respond_with_error(made, code, retry_after=retry_after)
    assert transport.value().startswith(expected)
    assert (b"X-Request-ID: %s\r\n" % (made.request_id,)) in transport.value()
