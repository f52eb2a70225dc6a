"""
Proxies in front of HTTP/2 backends, for the tests of C{protocol = "h2"}
and C{"h2c"}: an HTTP/2 TLS listener (the clients' side), an upstream
speaking HTTP/2 to the backends, and a gRPC server (grpcio, CPython only)
with a call of each kind.
"""

from __future__ import annotations

import threading
from typing import Iterator, Optional

from twisted.internet import reactor

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import (
    TLS,
    BackendServer,
    Config,
    Listener,
    Route,
    ServerSettings,
    TLSCertificate,
    Upstream,
)

#: The service and its methods, as paths.
SERVICE = "test.Echo"
UNARY = "/test.Echo/Unary"
SERVER_STREAM = "/test.Echo/ServerStream"
CLIENT_STREAM = "/test.Echo/ClientStream"
BIDI = "/test.Echo/Bidi"
SLOW = "/test.Echo/Slow"


def h2_proxy(
    testcase,
    certificate,
    backend_url: str,
    protocol: str,
    route_options: Optional[dict] = None,
    **upstream_options,
) -> int:
    """
    Start a proxy with an HTTP/2 TLS listener for C{certificate} (a cert
    and key path) and one upstream of one server, C{backend_url}, spoken
    to with C{protocol}; stopped at the end of the test.  The service is
    C{testcase.proxy_service}.

    @return: the listener's port.
    """
    scheme, rest = backend_url.split("://")
    host, port = rest.rsplit(":", 1)
    server = BackendServer(backend_url, scheme, host, int(port))
    cert, key = certificate
    config = Config(
        server=ServerSettings(),
        listeners={
            "websecure": Listener(
                "websecure", "tcp:0:interface=127.0.0.1", tls="main", http2=True
            )
        },
        upstreams={
            "app": Upstream("app", (server,), protocol=protocol, **upstream_options)
        },
        routes=(Route(0, "app", "/", **(route_options or {})),),
        tls={"main": TLS("main", (TLSCertificate(str(cert), str(key)),), default="localhost")},
    )
    service = ProxyService(config, reactor)
    service.startService()
    testcase.addCleanup(service.stopService)
    testcase.proxy_service = service
    return service.ports[0].getHost().port


def grpc_server(testcase) -> int:
    """
    Start a grpcio server on 127.0.0.1 (h2c) serving L{SERVICE} with raw
    bytes messages; stopped at the end of the test.

    Its calls: C{Unary} answers C{echo:} and the request; C{ServerStream}
    answers the request's digit count of messages; C{ClientStream} joins
    what it is sent; C{Bidi} answers each message as it comes; C{Slow}
    answers only when its client cancels (or after ten seconds).

    @return: its port.
    """
    from concurrent import futures

    import grpc

    def unary(request: bytes, context) -> bytes:
        return b"echo:" + request

    def server_stream(request: bytes, context) -> Iterator[bytes]:
        for index in range(int(request)):
            yield b"part %d" % (index,)

    def client_stream(requests, context) -> bytes:
        return b"+".join(requests)

    def bidi(requests, context) -> Iterator[bytes]:
        for each in requests:
            yield b"re:" + each

    def slow(request: bytes, context) -> bytes:
        gone = threading.Event()
        context.add_callback(gone.set)
        gone.wait(10)
        return b"late"

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    testcase.addCleanup(lambda: server.stop(0).wait(5))
    return port


def grpc_channel(testcase, port: int, ca_path):
    """
    A grpcio channel to the proxy's TLS listener on C{port}, trusting the
    test CA; closed at the end of the test.
    """
    import grpc

    channel = grpc.secure_channel(
        "localhost:%d" % (port,),
        grpc.ssl_channel_credentials(root_certificates=ca_path.read_bytes()),
    )
    testcase.addCleanup(channel.close)
    return channel
