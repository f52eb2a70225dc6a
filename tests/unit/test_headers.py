"""
Tests for L{txrevproxy.http.headers}: what crosses the proxy, and what it
adds (RFC 9110 section 7.6).
"""

from __future__ import annotations

from twisted.web.http_headers import Headers

from txrevproxy.http.headers import (
    BACKEND_BANNERS,
    HOP_BY_HOP,
    client_response_headers,
    http_date,
    remove_client_copies,
    response_skipped,
    serialize_head,
    serialize_request_head,
    upstream_request_headers,
    with_client_subject,
)


def forward(headers, trusted=False, framing=None, host=b"shop.test", **more):
    return upstream_request_headers(
        headers,
        host=host,
        client_host=b"shop.test",
        client_ip=more.pop("client_ip", b"192.0.2.7"),
        trusted=trusted,
        scheme=b"http",
        via=b"1.1 txrevproxy",
        request_id=b"rid1",
        body_framing=framing,
        **more,
    )


def names(headers):
    return [name.lower() for name, _ in headers]


def test_hop_by_hop_and_connection_named_headers_are_dropped():
    out = forward(
        [
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"TE", b"trailers"),
            (b"Trailer", b"X"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Upgrade", b"websocket"),
            (b"Proxy-Authorization", b"Basic x"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Expect", b"100-continue"),
            (b"Content-Length", b"999"),
            (b"Accept", b"*/*"),
        ]
    )
    assert names(out) == [
        b"host",
        b"accept",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"via",
        b"x-request-id",
    ]


def test_untrusted_peer_forwarding_headers_are_replaced():
    out = dict(
        forward(
            [
                (b"X-Forwarded-For", b"10.9.9.9"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"evil.test"),
                (b"X-Request-ID", b"forged"),
            ]
        )
    )
    assert out[b"X-Forwarded-For"] == b"192.0.2.7"
    assert out[b"X-Forwarded-Proto"] == b"http"
    assert out[b"X-Forwarded-Host"] == b"shop.test"
    assert out[b"X-Request-ID"] == b"rid1"


def test_trusted_peer_forwarding_headers_are_extended():
    out = dict(
        forward(
            [
                (b"X-Forwarded-For", b"203.0.113.1"),
                (b"X-Forwarded-For", b"10.0.0.1"),
                (b"X-Forwarded-Proto", b"https"),
                (b"X-Forwarded-Host", b"www.shop.test"),
                (b"Via", b"1.1 edge"),
            ],
            trusted=True,
        )
    )
    assert out[b"X-Forwarded-For"] == b"203.0.113.1, 10.0.0.1, 192.0.2.7"
    assert out[b"X-Forwarded-Proto"] == b"https"
    assert out[b"X-Forwarded-Host"] == b"www.shop.test"
    assert out[b"Via"] == b"1.1 edge, 1.1 txrevproxy"


_SPOOFED = [
    (b"Forwarded", b"for=1.2.3.4;proto=https"),
    (b"X-Forwarded-Port", b"1"),
    (b"X-Forwarded-Prefix", b"/evil"),
]


def test_untrusted_peer_forwarded_port_and_prefix_are_dropped():
    out = forward(_SPOOFED)
    assert b"forwarded" not in names(out)
    assert b"x-forwarded-port" not in names(out)
    assert b"x-forwarded-prefix" not in names(out)
    out = dict(forward(_SPOOFED, port=b"8080", prefix=b"/api"))
    assert out[b"X-Forwarded-Port"] == b"8080"
    assert out[b"X-Forwarded-Prefix"] == b"/api"


def test_untrusted_peer_forwarded_is_replaced_by_this_hop_when_adding():
    out = forward(_SPOOFED, forwarded=True)
    assert names(out).count(b"forwarded") == 1
    assert dict(out)[b"Forwarded"] == b"for=192.0.2.7;proto=http;host=shop.test"
    out = forward([], forwarded=True, client_ip=b"2001:db8::7")
    assert dict(out)[b"Forwarded"] == (
        b'for="[2001:db8::7]";proto=http;host=shop.test'
    )


def test_trusted_peer_forwarded_is_kept_unchanged_when_not_adding():
    out = forward(
        [
            (b"Forwarded", b"for=_hidden"),
            (b"forwarded", b'for="[2001:db8::1]";proto=https'),
        ],
        trusted=True,
    )
    assert dict(out)[b"Forwarded"] == (
        b'for=_hidden, for="[2001:db8::1]";proto=https'
    )
    assert names(out).count(b"forwarded") == 1
    assert b"forwarded" not in names(forward([], trusted=True))


def test_trusted_peer_forwarded_is_extended_when_adding():
    out = forward(
        [(b"Forwarded", b"for=unknown"), (b"Forwarded", b"for=_lb;proto=https")],
        trusted=True,
        forwarded=True,
    )
    assert dict(out)[b"Forwarded"] == (
        b"for=unknown, for=_lb;proto=https, for=192.0.2.7;proto=http;host=shop.test"
    )


def test_trusted_peer_malformed_forwarded_is_replaced_by_this_hop():
    out = forward([(b"Forwarded", b'for="1.2.3.4')], trusted=True, forwarded=True)
    assert dict(out)[b"Forwarded"] == b"for=192.0.2.7;proto=http;host=shop.test"


def test_trusted_peer_port_is_kept_and_prefix_put_in_front():
    headers = [(b"X-Forwarded-Port", b"443"), (b"X-Forwarded-Prefix", b"/outer/")]
    out = dict(forward(headers, trusted=True, port=b"8080", prefix=b"/api"))
    assert out[b"X-Forwarded-Port"] == b"443"
    assert out[b"X-Forwarded-Prefix"] == b"/outer/api"
    out = dict(forward(headers, trusted=True, port=b"8080"))
    assert out[b"X-Forwarded-Prefix"] == b"/outer/"
    out = dict(forward([(b"X-Forwarded-Prefix", b"/")], trusted=True, prefix=b"/api"))
    assert out[b"X-Forwarded-Prefix"] == b"/api"
    out = dict(forward([], trusted=True, port=b"8080", prefix=b"/api"))
    assert out[b"X-Forwarded-Port"] == b"8080"
    assert out[b"X-Forwarded-Prefix"] == b"/api"


def test_body_framing_is_set_by_the_proxy():
    assert dict(forward([], framing=b"chunked"))[b"Transfer-Encoding"] == b"chunked"
    assert dict(forward([], framing=b"12"))[b"Content-Length"] == b"12"
    assert b"content-length" not in names(forward([(b"Content-Length", b"3")]))


def test_host_is_the_one_given():
    out = forward([(b"Host", b"client.test")], host=b"backend:8080")
    assert out[0] == (b"Host", b"backend:8080")
    assert names(out).count(b"host") == 1


def test_serialized_head():
    head = serialize_request_head(b"GET", b"/a%20b?x=1", [(b"Host", b"h")])
    assert head == b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"


def test_a_head_without_fields_is_its_start_line_and_the_empty_line():
    assert serialize_head(b"HTTP/1.1 204 No Content", []) == (
        b"HTTP/1.1 204 No Content\r\n\r\n"
    )


def test_a_head_takes_its_fields_from_any_iterable_in_their_order():
    fields = iter([(b"B", b"2"), (b"A", b"1"), (b"B", b"")])
    assert serialize_head(b"HTTP/1.1 200 OK", fields) == (
        b"HTTP/1.1 200 OK\r\nB: 2\r\nA: 1\r\nB: \r\n\r\n"
    )


def test_response_hop_by_hop_dropped_and_content_length_kept_when_framed():
    headers = [
        (b"Connection", b"close, X-Internal"),
        (b"X-Internal", b"1"),
        (b"Keep-Alive", b"timeout=3"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert client_response_headers(headers, keep_content_length=True) == [
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert client_response_headers(headers, keep_content_length=False) == [
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]



def test_response_connection_listing_only_hop_by_hop_options_keeps_the_rest():
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=3"),
        (b"Content-Length", b"5"),
    ]
    assert client_response_headers(headers, keep_content_length=True) == [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"5"),
    ]


def test_response_connection_option_named_with_skipped_ones_is_dropped():
    headers = [
        (b"Connection", b"Keep-Alive, Close, x-trace"),
        (b"X-Trace", b"1"),
        (b"Vary", b"Accept"),
    ]
    assert client_response_headers(headers, keep_content_length=True) == [
        (b"Vary", b"Accept"),
    ]

def test_http_date_is_imf_fixdate():
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784111777.9) == b"Sun, 06 Nov 1994 08:49:37 GMT"


LEGACY_RESPONSE = [
    (b"Server", b"Apache/2.2.3 (CentOS)"),
    (b"X-Powered-By", b"PHP/5.2.17"),
    (b"X-AspNet-Version", b"4.0.30319"),
    (b"X-AspNetMvc-Version", b"5.2"),
    (b"X-Runtime", b"0.012"),
    (b"X-Generator", b"Drupal 7"),
    (b"X-Drupal-Cache", b"HIT"),
    (b"Cache-Control", b"max-age=60"),
    (b"Vary", b"Accept-Encoding"),
    (b"X-Request-ID", b"abc"),
    (b"Set-Cookie", b"a=1"),
    (b"Connection", b"close"),
]


def test_backend_banners_are_dropped_unless_passed():
    hidden = client_response_headers(LEGACY_RESPONSE, False, response_skipped(False))
    assert names(hidden) == [b"cache-control", b"vary", b"x-request-id", b"set-cookie"]
    passed = client_response_headers(LEGACY_RESPONSE, False, response_skipped(True))
    assert passed == LEGACY_RESPONSE[:-1]


def test_banner_choice_is_one_of_two_sets_made_once():
    assert response_skipped(True) is HOP_BY_HOP
    assert response_skipped(False) is response_skipped(False)
    assert response_skipped(False) == HOP_BY_HOP | BACKEND_BANNERS


def test_client_copies_of_a_vouched_field_are_removed_under_every_spelling():
    headers = Headers()
    for name, value in [
        (b"X-User", b"forged"),
        (b"X_User", b"forged"),
        (b"x_USER", b"forged"),
        (b"Connection", b"keep-alive, X-User"),
        (b"Connection", b"x_user"),
        (b"X-Users", b"kept"),
    ]:
        headers.addRawHeader(name, value)
    remove_client_copies(headers, b"X-User")
    assert sorted(name.lower() for name, _ in headers.getAllRawHeaders()) == [
        b"connection",
        b"x-users",
    ]
    assert headers.getRawHeaders(b"connection") == [b"keep-alive"]


def test_a_vouched_field_set_after_its_removal_reaches_the_backend_alone():
    headers = Headers()
    headers.addRawHeader(b"X_User", b"admin")
    headers.addRawHeader(b"Connection", b"X-User")
    remove_client_copies(headers, b"x-user")
    assert headers.getRawHeaders(b"connection") is None
    headers.setRawHeaders(b"x-user", [b"alice"])
    sent = forward([(n, v) for n, vs in headers.getAllRawHeaders() for v in vs])
    assert [v for n, v in sent if n.lower().replace(b"_", b"-") == b"x-user"] == [
        b"alice"
    ]


def test_client_subject_replaces_the_clients_copies_under_every_spelling():
    sent = with_client_subject(
        [(b"X-Client-Subject", b"CN=forged"), (b"x_client_subject", b"CN=forged")],
        b"X-Client-Subject",
        b"CN=alice",
    )
    assert sent == [(b"X-Client-Subject", b"CN=alice")]
