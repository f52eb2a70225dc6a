"""
gRPC calls and trailers in L{txrevproxy.forward.exchange.ProxyExchange},
over an HTTP/1.1 client connection in memory: C{grpc-timeout} caps the
response timeout, the proxy's own errors become gRPC statuses, and
trailers end a chunked response for a client that takes them.
"""

from __future__ import annotations

from ..support.proxies import Proxy, status


def grpc_call(extra: bytes = b"") -> bytes:
    return (
        b"POST /svc/Call HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc\r\n"
        b"TE: trailers\r\n" + extra + b"Content-Length: 6\r\n\r\n\x00\x00\x00\x00\x01x"
    )


def test_grpc_timeout_caps_the_response_timeout():
    proxy = Proxy(count=1)
    _, client = proxy.client(grpc_call(b"grpc-timeout: 250m\r\n"))
    proxy.clock.advance(0.2)
    assert client.value() == b""
    proxy.clock.advance(0.05)
    assert status(client) == b"HTTP/1.1 200 OK"
    head = client.value().split(b"\r\n\r\n")[0]
    assert b"\r\nGrpc-Status: 4\r\n" in head
    assert b"\r\nGrpc-Message: 504 Gateway Timeout (request id " in head
    assert b"\r\nContent-Type: application/grpc\r\n" in head


def test_a_malformed_grpc_timeout_leaves_the_response_timeout():
    proxy = Proxy(count=1)
    _, client = proxy.client(grpc_call(b"grpc-timeout: soon\r\n"))
    proxy.clock.advance(59)
    assert client.value() == b""


def test_a_get_with_grpc_timeout_keeps_the_response_timeout():
    # Not a gRPC call: those are POSTs.
    proxy = Proxy(count=1)
    _, client = proxy.client(b"GET / HTTP/1.1\r\nHost: h\r\ngrpc-timeout: 250m\r\n\r\n")
    proxy.clock.advance(59)
    assert client.value() == b""


def test_a_refused_connection_is_unavailable_for_a_grpc_call():
    proxy = Proxy(count=1, retries=0)
    proxy.endpoints[0].refuse = True
    _, client = proxy.client(grpc_call())
    assert status(client) == b"HTTP/1.1 200 OK"
    assert b"\r\nGrpc-Status: 14\r\n" in client.value()


def test_other_requests_still_get_the_error_page():
    proxy = Proxy(count=1, retries=0)
    proxy.endpoints[0].refuse = True
    _, client = proxy.client(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"


def respond_with_trailers(request: bytes) -> bytes:
    proxy = Proxy(count=1)
    channel, client = proxy.client(request)
    exchange = channel.requests[-1].handler
    backend = proxy.connection(0)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
    exchange.responseTrailers([(b"grpc-status", b"0"), (b"grpc-message", b"")])
    backend.dataReceived(b"0\r\n\r\n")
    return client.value()


def test_trailers_end_a_chunked_response_for_a_client_that_takes_them():
    sent = respond_with_trailers(grpc_call())
    assert sent.endswith(b"\r\n2\r\nok\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n")


def test_trailers_are_dropped_for_a_client_that_did_not_ask():
    sent = respond_with_trailers(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert sent.endswith(b"\r\n2\r\nok\r\n0\r\n\r\n")
    assert b"grpc-status" not in sent
