"""
gRPC end to end: grpcio's client, over HTTP/2 and TLS to the proxy,
which carries each call over h2c to a grpcio server on 127.0.0.1; and the
proxy's own errors as gRPC statuses.

grpcio has no wheel for PyPy, so these run on CPython only.  Its calls
block, so they run in the reactor's thread pool.
"""

from __future__ import annotations

import platform

import pytest
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import HeaderRules

from ..support.h2_client import connect_h2
from ..support.h2_upstreams import (
    BIDI,
    CLIENT_STREAM,
    SERVER_STREAM,
    SLOW,
    UNARY,
    grpc_channel,
    grpc_server,
    h2_proxy,
)
from ..support.processes import free_port, proxy_process, temporary_directory
from ..support.tls_clients import CertificateMaker

pytestmark = pytest.mark.skipif(
    platform.python_implementation() != "CPython",
    reason="grpcio has no PyPy wheel: the gRPC tests need CPython",
)


class GrpcCase(TestCase):
    """
    A development certificate for the proxy's TLS listener.
    """

    def setUp(self):
        self.maker = CertificateMaker(temporary_directory(self))
        self.certificate = self.maker.write("localhost", ["localhost"])

    def channel(self, backend_url: str, **options):
        port = h2_proxy(self, self.certificate, backend_url, "h2c", **options)
        return grpc_channel(self, port, self.maker.ca_path)


class GrpcCallTests(GrpcCase):
    """
    Every kind of call, through the proxy to a grpcio server.
    """

    def setUp(self):
        super().setUp()
        backend = grpc_server(self)
        self.grpc = self.channel("http://127.0.0.1:%d" % (backend,))

    @inlineCallbacks
    def test_unary_call(self):
        answer = yield deferToThread(
            self.grpc.unary_unary(UNARY), b"hello", timeout=10
        )
        self.assertEqual(answer, b"echo:hello")

    @inlineCallbacks
    def test_server_streaming_call(self):
        call = self.grpc.unary_stream(SERVER_STREAM)
        answers = yield deferToThread(lambda: list(call(b"3", timeout=10)))
        self.assertEqual(answers, [b"part 0", b"part 1", b"part 2"])

    @inlineCallbacks
    def test_client_streaming_call(self):
        call = self.grpc.stream_unary(CLIENT_STREAM)
        answer = yield deferToThread(call, iter([b"a", b"b", b"c"]), timeout=10)
        self.assertEqual(answer, b"a+b+c")

    @inlineCallbacks
    def test_bidirectional_streaming_call(self):
        call = self.grpc.stream_stream(BIDI)
        answers = yield deferToThread(
            lambda: list(call(iter([b"x" * 100000, b"y", b"z"]), timeout=10))
        )
        self.assertEqual(answers, [b"re:" + b"x" * 100000, b"re:y", b"re:z"])

    @inlineCallbacks
    def test_many_calls_share_the_backend_connection(self):
        call = self.grpc.unary_unary(UNARY)

        def calls():
            futures = [call.future(b"%d" % (i,), timeout=10) for i in range(30)]
            return [each.result() for each in futures]

        answers = yield deferToThread(calls)
        self.assertEqual(answers, [b"echo:%d" % (i,) for i in range(30)])


class GrpcErrorTests(GrpcCase):
    """
    What the proxy answers itself reaches a gRPC client as a gRPC status.
    """

    @inlineCallbacks
    def test_backend_down_is_unavailable(self):
        import grpc

        channel = self.channel("http://127.0.0.1:%d" % (free_port(),), retries=0)
        call = channel.unary_unary(UNARY)
        error = yield deferToThread(self._failure, call)
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("502 Bad Gateway", error.details())

    @inlineCallbacks
    def test_slow_backend_past_the_deadline_is_deadline_exceeded(self):
        import grpc

        backend = grpc_server(self)
        channel = self.channel("http://127.0.0.1:%d" % (backend,))
        call = channel.unary_unary(SLOW)
        error = yield deferToThread(self._failure, call, 0.5)
        self.assertEqual(error.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    @staticmethod
    def _failure(call, timeout=10):
        import grpc

        try:
            call(b"x", timeout=timeout)
        except grpc.RpcError as error:
            return error
        raise AssertionError("the call succeeded")

    @inlineCallbacks
    def test_grpc_timeout_caps_the_response_timeout(self):
        """
        The proxy itself answers DEADLINE_EXCEEDED once a call's
        C{grpc-timeout} passed, in trailers after a 200, while the route's
        own response timeout is a minute.  The backend is not told the
        deadline (the route removes the field), so its own DEADLINE_EXCEEDED
        (a trailers-only answer) cannot come first.
        """
        backend = grpc_server(self)
        port = h2_proxy(
            self,
            self.certificate,
            "http://127.0.0.1:%d" % (backend,),
            "h2c",
            route_options={"request_headers": HeaderRules(remove=("grpc-timeout",))},
        )
        client = yield connect_h2(port)

        def close():
            client.transport.loseConnection()
            return client.closed

        self.addCleanup(close)
        response = yield client.request(
            b"POST",
            SLOW.encode("ascii"),
            headers=[
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                (b"grpc-timeout", b"200m"),
            ],
            body=b"\x00\x00\x00\x00\x01x",
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header(b"content-type"), b"application/grpc")
        trailers = dict(response.trailers)
        self.assertEqual(trailers[b"grpc-status"], b"4")
        self.assertTrue(trailers[b"grpc-message"].startswith(b"504 Gateway Timeout"))


class GrpcTwistdTests(GrpcCase):
    """
    The keys in a TOML file, under C{twistd -n txrevproxy}.
    """

    def test_grpc_calls_through_twistd_with_an_h2c_upstream(self):
        backend = grpc_server(self)
        cert, key = self.certificate
        config = (
            '[listeners.websecure]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n'
            'tls = "main"\nhttp2 = true\n\n'
            "[tls.main]\n"
            'certificates = [{{ names = ["localhost"], cert = "%s", key = "%s" }}]\n'
            'default = "localhost"\n\n'
            "[upstreams.grpc]\n"
            'protocol = "h2c"\nmax_streams = 10\n'
            'servers = [{{ url = "http://127.0.0.1:%d" }}]\n\n'
            '[[routes]]\npath = "/"\nupstream = "grpc"\n'
        ) % (cert, key, backend)
        with proxy_process(temporary_directory(self), [], config) as proxy:
            channel = grpc_channel(self, proxy.port, self.maker.ca_path)
            answer = channel.unary_unary(UNARY)(b"twistd", timeout=30)
            parts = list(channel.unary_stream(SERVER_STREAM)(b"2", timeout=30))
            channel.close()
        self.assertEqual(answer, b"echo:twistd")
        self.assertEqual(parts, [b"part 0", b"part 1"])
