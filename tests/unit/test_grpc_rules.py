"""
Tests of the gRPC rules (L{txrevproxy.http.grpc}), the HTTP/2 fields of a
backend request (L{txrevproxy.http.h2_fields}), the C{protocol} and
C{max_streams} keys of an upstream.
"""

from __future__ import annotations

import pytest
from hpack import NeverIndexedHeaderTuple

from txrevproxy.http.grpc import grpc_error_fields, grpc_status, grpc_timeout, is_grpc
from txrevproxy.http.h2_fields import h2_request_fields, h2_response_head

from ..support.configs import document, parse, problems


@pytest.mark.parametrize(
    "value, seconds",
    [
        (b"100m", 0.1),
        (b"5S", 5.0),
        (b"2M", 120.0),
        (b"1H", 3600.0),
        (b"250000u", 0.25),
        (b"99999999n", 0.099999999),
        (b"123456789S", None),
        (b"5s", None),
        (b"S", None),
        (b"-5S", None),
        (None, None),
    ],
)
def test_grpc_timeout_reads_digits_and_a_unit(value, seconds):
    assert grpc_timeout(value) == (None if seconds is None else pytest.approx(seconds))


def test_grpc_content_types():
    assert is_grpc(b"application/grpc")
    assert is_grpc(b"application/grpc+proto")
    assert not is_grpc(b"application/json")
    assert not is_grpc(None)


def test_proxy_errors_map_to_grpc_statuses_as_envoy_does():
    assert [grpc_status(code) for code in (502, 503, 504, 429, 404, 500)] == [
        14,
        14,
        4,
        14,
        12,
        2,
    ]
    assert grpc_error_fields(503, b"503 Service Unavailable 100%") == [
        (b"grpc-status", b"14"),
        (b"grpc-message", b"503 Service Unavailable 100%25"),
    ]


def test_h2_request_ids_stay_out_of_the_hpack_dynamic_table():
    fields = h2_request_fields(b"GET", b"/", [(b"X-Request-ID", b"abc")], b"http")
    assert fields[-1] == (b"x-request-id", b"abc")
    assert isinstance(fields[-1], NeverIndexedHeaderTuple)


def test_h2_request_fields_drop_connection_fields_and_carry_the_authority():
    fields = h2_request_fields(
        b"POST",
        b"/svc/Call",
        [
            (b"Host", b"backend:8080"),
            (b"Content-Type", b"application/grpc"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
        ],
        b"http",
    )
    assert fields == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"backend:8080"),
        (b":path", b"/svc/Call"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
    ]


def test_h2_response_head_splits_the_status_and_the_length():
    assert h2_response_head(
        [(b":status", b"200"), (b"content-length", b"12"), (b"x", b"y")]
    ) == (200, [(b"content-length", b"12"), (b"x", b"y")], 12)
    assert h2_response_head([(b":status", b"204")]) == (204, [], None)


def test_protocol_and_max_streams_keys():
    config = parse(
        document(
            upstream='servers = [{ url = "http://127.0.0.1:50051" }]\n'
            'protocol = "h2c"\nmax_streams = 8'
        )
    )
    upstream = config.upstreams["app"]
    assert (upstream.protocol, upstream.max_streams) == ("h2c", 8)
    default = parse(document()).upstreams["app"]
    assert (default.protocol, default.max_streams) == ("http/1.1", 100)


@pytest.mark.parametrize(
    "upstream, expected",
    [
        (
            'servers = [{ url = "http://b:1" }]\nprotocol = "h2"',
            ['upstreams.app.servers[0].url: protocol = "h2" needs https:// servers, got "http://b:1"'],
        ),
        (
            'servers = [{ url = "https://b:1" }]\nprotocol = "h2c"',
            ['upstreams.app.servers[0].url: protocol = "h2c" needs http:// servers, got "https://b:1"'],
        ),
        (
            'servers = [{ url = "http://b:1" }]\nprotocol = "http2"',
            ['upstreams.app.protocol: unknown value "http2"; expected one of "http/1.1", "h2", "h2c"'],
        ),
        (
            'servers = [{ url = "http://b:1" }]\nprotocol = "h2c"\nmax_streams = 0',
            ["upstreams.app.max_streams: must be at least 1, got 0"],
        ),
        (
            'servers = [{ url = "http://b:1" }]\nprotocol = "h2c"\nproxy_protocol = "v2"',
            [
                'upstreams.app.proxy_protocol: not with protocol = "h2c": a PROXY '
                "header names one client, and an HTTP/2 connection carries the "
                "requests of many"
            ],
        ),
    ],
)
def test_protocol_problems(upstream, expected):
    assert problems(document(upstream=upstream)) == expected
