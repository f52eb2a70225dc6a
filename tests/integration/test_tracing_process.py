"""
Tracing in a real C{twistd -n txrevproxy} process, single or with
workers: a client's trace reaches the collector (an OTLP/HTTP receiver in
a thread of the test) and the backend, and SIGTERM exports what the
exporter held.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import List
from urllib.request import Request, urlopen

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from txrevproxy.http.trace_context import parse_traceparent

from ..support.processes import proxy_process
from .test_operations_process import fetch, serving

CLIENT_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

CONFIG = """
[server]
workers = {workers}
trusted_proxies = ["127.0.0.1/32"]

[log]
access = "access.log"

[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[upstreams.app]
servers = [{{{{ url = "http://127.0.0.1:{backend}" }}}}]

[[routes]]
name = "shop"
upstream = "app"

[tracing]
endpoint = "http://127.0.0.1:{collector}/v1/traces"
sample_ratio = 0
batch_delay = "1h"
"""


class Collector(BaseHTTPRequestHandler):
    """
    Keeps the spans of every OTLP/HTTP export posted to it.
    """

    spans: List[Span] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        for spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope in spans.scope_spans:
                self.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Backend(BaseHTTPRequestHandler):
    """
    Answers C{ok}, keeping each traceparent it gets.
    """

    traceparents: List[str] = []

    def do_GET(self):
        self.traceparents.append(self.headers["traceparent"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.spans = []
    yield from serving(Collector)


@pytest.fixture
def backend():
    Backend.traceparents = []
    yield from serving(Backend)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_clients_trace_is_exported_when_the_proxy_stops(
    tmp_path, collector, backend, workers
):
    text = CONFIG.format(workers=workers, backend=backend, collector=collector)
    with proxy_process(tmp_path, [], text) as proxy:
        request = Request(
            "http://127.0.0.1:%d/products" % (proxy.port,),
            headers={"traceparent": CLIENT_PARENT},
        )
        with urlopen(request, timeout=30) as response:
            assert response.read() == b"ok"
        # Not recorded: neither sampled nor with a believed parent.
        assert fetch("http://127.0.0.1:%d/other" % (proxy.port,)) == b"ok"
    server_spans = [s for s in Collector.spans if s.kind == Span.SPAN_KIND_SERVER]
    client_spans = [s for s in Collector.spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert [(s.name, s.trace_id.hex()) for s in server_spans] == [
        ("GET shop", CLIENT_TRACE)
    ]
    [client_span] = client_spans
    assert client_span.parent_span_id == server_spans[0].span_id
    traced = parse_traceparent([Backend.traceparents[0].encode("ascii")])
    assert traced.span_id.to_bytes(8, "big") == client_span.span_id
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert [line.rsplit(" ", 1)[1][:6] for line in lines] == ["trace="] * 2
    assert any(line.endswith(" trace=" + CLIENT_TRACE) for line in lines)
