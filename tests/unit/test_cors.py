"""
Unit tests of the C{cors} filter's decisions: origin patterns, preflights,
the fields of actual responses, C{Vary} merging and the configuration's
problems.
"""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from txrevproxy.config.schema import Invalid
from txrevproxy.filters import cors
from txrevproxy.interfaces import IFilter

from ..support.filter_requests import FakeRequest


def make(**options):
    options.setdefault("allow_origins", ["https://app.example.com", "https://*.example.com"])
    return cors.configure(options, None)


def preflight(filter_, origin=b"https://app.example.com", method=b"PUT", headers=None):
    fields = [(b"Origin", origin), (b"Access-Control-Request-Method", method)]
    if headers is not None:
        fields.append((b"Access-Control-Request-Headers", headers))
    return filter_.request(FakeRequest(method=b"OPTIONS", headers=fields))


def respond(filter_, origin=None, headers=()):
    fields = [] if origin is None else [(b"Origin", origin)]
    head = list(headers)
    filter_.response(FakeRequest(headers=fields), 200, head)
    return head


def test_cors_is_a_filter():
    verifyObject(IFilter, make())


@pytest.mark.parametrize(
    "origin, allowed",
    [
        (b"https://app.example.com", True),
        (b"https://a.example.com", True),
        (b"https://a.b.example.com", True),
        (b"HTTPS://A.Example.COM", True),
        (b"https://example.com", False),
        (b"https://example.com.evil.com", False),
        (b"https://evilexample.com", False),
        (b"http://a.example.com", False),
        (b"https://a.example.com:8443", False),
        (b"https://*.example.com", False),
        (b"null", False),
        (b"https://a.example.com/path", False),
    ],
)
def test_origin_matching(origin, allowed):
    assert make().allowed_origin(origin) is allowed


def test_pattern_with_port_needs_that_port():
    filter_ = make(allow_origins=["http://localhost:3000"])
    assert filter_.allowed_origin(b"http://localhost:3000")
    assert not filter_.allowed_origin(b"http://localhost")
    assert not filter_.allowed_origin(b"http://localhost:3001")


def test_preflight_from_allowed_origin_is_answered_204():
    answer = preflight(
        make(allow_methods=["GET", "PUT"], allow_headers=["X-Token"], max_age="10m"),
        headers=b"x-token",
    )
    assert answer.status == 204
    assert dict(answer.headers) == {
        b"Access-Control-Allow-Origin": b"https://app.example.com",
        b"Access-Control-Allow-Methods": b"GET, PUT",
        b"Access-Control-Allow-Headers": b"x-token",
        b"Access-Control-Max-Age": b"600",
        b"Vary": b"Origin",
    }


def test_preflight_with_credentials_echoes_origin_and_says_true():
    answer = preflight(make(allow_credentials=True, allow_methods=["PUT"]))
    fields = dict(answer.headers)
    assert fields[b"Access-Control-Allow-Origin"] == b"https://app.example.com"
    assert fields[b"Access-Control-Allow-Credentials"] == b"true"


def test_preflight_from_other_origin_is_refused_without_cors_fields():
    answer = preflight(make(allow_methods=["PUT"]), origin=b"https://evil.test")
    assert answer.status == 403
    assert not any(name.startswith(b"Access-Control") for name, _ in answer.headers)


def test_preflight_for_method_not_allowed_is_refused():
    assert preflight(make(), method=b"DELETE").status == 403
    assert preflight(make(), method=b"POST").status == 204


def test_preflight_for_header_not_allowed_is_refused():
    filter_ = make(allow_methods=["PUT"], allow_headers=["X-Token"])
    assert preflight(filter_, headers=b"X-Token, X-Other").status == 403


def test_any_header_echoes_the_requested_ones():
    answer = preflight(make(allow_methods=["*"], allow_headers=["*"]), headers=b"X-A, x-b")
    fields = dict(answer.headers)
    assert fields[b"Access-Control-Allow-Headers"] == b"x-a, x-b"
    assert fields[b"Access-Control-Allow-Methods"] == b"PUT"


def test_private_network_is_allowed_only_when_configured():
    request = FakeRequest(
        method=b"OPTIONS",
        headers=[
            (b"Origin", b"https://app.example.com"),
            (b"Access-Control-Request-Method", b"GET"),
            (b"Access-Control-Request-Private-Network", b"true"),
        ],
    )
    allowed = dict(make(allow_private_network=True).request(request).headers)
    assert allowed[b"Access-Control-Allow-Private-Network"] == b"true"
    assert b"Access-Control-Allow-Private-Network" not in dict(make().request(request).headers)


def test_options_without_request_method_is_not_a_preflight():
    request = FakeRequest(method=b"OPTIONS", headers=[(b"Origin", b"https://app.example.com")])
    assert make().request(request) is None


def test_actual_response_from_allowed_origin_gets_the_fields():
    head = respond(
        make(allow_credentials=True, expose_headers=["X-Total", "X-Page"]),
        origin=b"https://a.example.com",
        headers=[(b"Content-Type", b"text/plain")],
    )
    assert head == [
        (b"Content-Type", b"text/plain"),
        (b"Access-Control-Allow-Origin", b"https://a.example.com"),
        (b"Access-Control-Allow-Credentials", b"true"),
        (b"Access-Control-Expose-Headers", b"X-Total, X-Page"),
        (b"Vary", b"Origin"),
    ]


def test_backend_cors_fields_are_replaced():
    head = respond(
        make(),
        origin=b"https://evil.test",
        headers=[(b"Access-Control-Allow-Origin", b"*"), (b"Access-Control-Max-Age", b"1")],
    )
    assert head == [(b"Vary", b"Origin")]


def test_response_without_origin_still_varies_on_origin():
    assert respond(make()) == [(b"Vary", b"Origin")]


@pytest.mark.parametrize(
    "before, after",
    [
        ([(b"Vary", b"Accept-Encoding")], [(b"Vary", b"Accept-Encoding, Origin")]),
        ([(b"Vary", b"origin")], [(b"Vary", b"origin")]),
        ([(b"Vary", b"*")], [(b"Vary", b"*")]),
        (
            [(b"Vary", b"Accept"), (b"Vary", b"Cookie")],
            [(b"Vary", b"Accept, Origin"), (b"Vary", b"Cookie")],
        ),
        ([(b"Vary", b"")], [(b"Vary", b"Origin")]),
    ],
)
def test_vary_merge(before, after):
    cors.merge_vary(before, b"Origin")
    assert before == after


def test_any_origin_without_credentials_says_star_and_does_not_vary():
    filter_ = make(allow_origins=["*"])
    assert respond(filter_, origin=b"https://x.test") == [
        (b"Access-Control-Allow-Origin", b"*")
    ]
    assert respond(filter_) == []


@pytest.mark.parametrize(
    "options, path",
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, ".allow_origins"),
        ({"allow_origins": []}, ".allow_origins"),
        ({"allow_origins": ["https://app.example.com/"]}, ".allow_origins[0]"),
        ({"allow_origins": ["app.example.com"]}, ".allow_origins[0]"),
        ({"allow_origins": ["https://a.*.example.com"]}, ".allow_origins[0]"),
        ({"allow_origins": ["https://x:99999"]}, ".allow_origins[0]"),
        ({"allow_origins": ["*"], "allow_headers": ["bad header"]}, ".allow_headers[0]"),
        ({"allow_origins": ["*"], "max_age": 10}, ".max_age"),
    ],
)
def test_bad_options_are_problems_with_their_key(options, path):
    with pytest.raises(Invalid) as raised:
        cors.OPTIONS(options)
    assert [problem[0] for problem in raised.value.problems] == [path]


def test_only_safelisted_methods_send_no_allow_methods():
    answer = preflight(make(allow_methods=[]), method=b"POST")
    assert answer.status == 204
    assert b"Access-Control-Allow-Methods" not in dict(answer.headers)
