"""
Tracing over real sockets: a proxy started from TOML in front of a real
backend that records the traceparent it gets, exporting its spans to a
collector stand-in that takes OTLP/HTTP (protobuf) on 127.0.0.1.  The
exporter's batches are long apart; stopping the service exports what is
queued, so no test waits on the exporter's schedule.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Dict, List

import treq
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config
from txrevproxy.http.trace_context import parse_traceparent

from ..support.h2_client import connect_h2
from ..support.loopback import listen
from ..support.observed import Held
from ..support.processes import free_port, temporary_directory
from ..support.tls_clients import CertificateMaker
from ..support.waiting import until

CLIENT_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CLIENT_TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
CLIENT_SPAN = bytes.fromhex("00f067aa0ba902b7")


class Collector(resource.Resource):
    """
    An OTLP/HTTP traces receiver: every span of every export posted to
    C{/v1/traces}, and the resources they came from.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.spans: List[Span] = []
        self.services: List[str] = []

    def render_POST(self, request):
        if request.path != b"/v1/traces":
            request.setResponseCode(404)
            return b""
        body = request.content.read()
        if request.getHeader(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for spans in export.resource_spans:
            for attribute in spans.resource.attributes:
                if attribute.key == "service.name":
                    self.services.append(attribute.value.string_value)
            for scope in spans.scope_spans:
                self.spans.extend(scope.spans)
        request.setHeader(b"content-type", b"application/x-protobuf")
        # Closed after each export: the exporter's session may keep it
        # until garbage collection (PyPy's), past the end of the test.
        request.setHeader(b"connection", b"close")
        return ExportTraceServiceResponse().SerializeToString()

    def of_kind(self, kind: int) -> List[Span]:
        return [span for span in self.spans if span.kind == kind]


class Backend(resource.Resource):
    """
    Answers C{ok}, keeping the traceparent of each request.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.traceparents: List[bytes] = []

    def render_GET(self, request):
        self.traceparents.append(request.getHeader(b"traceparent"))
        request.setHeader(b"cache-control", b"max-age=60")
        return b"ok"


def attributes(span: Span) -> Dict[str, object]:
    values: Dict[str, object] = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value"))
    return values


class TracingTests(TestCase):
    @inlineCallbacks
    def start(
        self,
        trusted: str,
        ratio: float,
        dead_first=False,
        route="",
        extra="",
        backend=None,
        tls=False,
    ):
        """
        Start the collector, the backend and the proxy (route C{shop}).

        @param trusted: the proxy's C{trusted_proxies} network.
        @param dead_first: put a backend that refuses connections before
            the live one (round robin tries it first).
        @param route: more keys of the route.
        @param extra: more tables.
        @param backend: the backend's resource, if not a L{Backend}.
        @param tls: add the listener C{websecure} (TLS, HTTP/2 offered),
            whose port is C{self.tls_port}.
        """
        self.collector = Collector()
        collector_port = yield listen(server.Site(self.collector), self)
        self.backend = Backend()
        backend_port = yield listen(server.Site(backend or self.backend), self)
        urls = ["http://127.0.0.1:%d" % (backend_port,)]
        if dead_first:
            urls.insert(0, "http://127.0.0.1:%d" % (free_port(),))
        directory = Path(temporary_directory(self))
        if tls:
            cert, key = CertificateMaker(directory).write("localhost", ["localhost"])
            extra += (
                '[listeners.websecure]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
                'tls = "main"\n[tls.main]\ndefault = "localhost"\n'
                'certificates = [{ cert = "%s", key = "%s" }]\n' % (cert, key)
            )
        self.log_path = directory / "access.log"
        path = directory / "proxy.toml"
        path.write_text(
            '[server]\ntrusted_proxies = ["%s"]\n'
            '[log]\naccess = "%s"\nformat = "json"\n'
            '[listeners.web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
            '[upstreams.app]\nbalance = "round_robin"\nretries = 1\nservers = [%s]\n'
            '[[routes]]\nname = "shop"\nupstream = "app"\n%s\n'
            "[tracing]\n"
            'endpoint = "http://127.0.0.1:%d/v1/traces"\n'
            'service_name = "edge"\nsample_ratio = %s\nbatch_delay = "1h"\n%s'
            % (
                trusted,
                self.log_path,
                ", ".join('{ url = "%s" }' % (url,) for url in urls),
                route,
                collector_port,
                ratio,
                extra,
            )
        )
        self.config_path = path
        self.service = ProxyService(load_config(str(path)), reactor)
        self.service.startService()
        self.stopped = False
        self.addCleanup(self.stop)
        self.port = self.service.ports[0].getHost().port
        if tls:
            self.tls_port = self.service.ports[1].getHost().port

    def stop(self):
        """
        Stop the proxy (once), which exports the spans it holds.
        """
        if self.stopped:
            return None
        self.stopped = True
        return self.service.stopService()

    @inlineCallbacks
    def get(self, traceparent=None):
        headers = {} if traceparent is None else {"traceparent": [traceparent]}
        response = yield treq.get(
            "http://127.0.0.1:%d/products" % (self.port,),
            headers=headers,
            persistent=False,
        )
        body = yield treq.content(response)
        self.assertEqual((response.code, body), (200, b"ok"))

    def logged(self) -> List[dict]:
        self.service.access_log.flush()
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    @inlineCallbacks
    def test_a_trusted_clients_trace_is_followed_to_the_backend(self):
        # Sampling is off: the client's sampled flag alone records the request.
        yield self.start(trusted="127.0.0.1/32", ratio=0)
        yield self.get(CLIENT_PARENT)
        yield self.stop()
        [server_span] = self.collector.of_kind(Span.SPAN_KIND_SERVER)
        [client_span] = self.collector.of_kind(Span.SPAN_KIND_CLIENT)
        self.assertEqual(self.collector.services, ["edge"])
        self.assertEqual(server_span.trace_id, CLIENT_TRACE)
        self.assertEqual(server_span.parent_span_id, CLIENT_SPAN)
        self.assertEqual(server_span.name, "GET shop")
        self.assertEqual(client_span.trace_id, CLIENT_TRACE)
        self.assertEqual(client_span.parent_span_id, server_span.span_id)
        self.assertEqual(
            [
                attributes(server_span)[key]
                for key in ("http.route", "http.response.status_code", "url.path")
            ],
            ["shop", 200, "/products"],
        )
        [sent] = self.backend.traceparents
        parent = parse_traceparent([sent])
        self.assertEqual(parent.trace_id.to_bytes(16, "big"), CLIENT_TRACE)
        self.assertEqual(parent.span_id.to_bytes(8, "big"), client_span.span_id)
        self.assertTrue(parent.sampled)
        [line] = self.logged()
        self.assertEqual(line["trace_id"], CLIENT_TRACE.hex())

    @inlineCallbacks
    def test_a_retry_is_a_second_client_span(self):
        yield self.start(trusted="127.0.0.1/32", ratio=1, dead_first=True)
        yield self.get()
        yield self.stop()
        [server_span] = self.collector.of_kind(Span.SPAN_KIND_SERVER)
        first, second = sorted(
            self.collector.of_kind(Span.SPAN_KIND_CLIENT),
            key=lambda span: attributes(span)["txrevproxy.attempt"],
        )
        self.assertEqual(
            [span.parent_span_id for span in (first, second)],
            [server_span.span_id] * 2,
        )
        self.assertEqual(first.status.code, Status.STATUS_CODE_ERROR)
        self.assertEqual(attributes(first)["error.type"], "refused")
        self.assertEqual(attributes(second)["http.response.status_code"], 200)
        self.assertEqual(attributes(second)["http.request.resend_count"], 1)
        [sent] = self.backend.traceparents
        self.assertEqual(
            parse_traceparent([sent]).span_id.to_bytes(8, "big"), second.span_id
        )

    @inlineCallbacks
    def test_an_untrusted_peers_traceparent_is_not_followed(self):
        yield self.start(trusted="192.0.2.0/24", ratio=1)
        yield self.get(CLIENT_PARENT)
        yield self.stop()
        [server_span] = self.collector.of_kind(Span.SPAN_KIND_SERVER)
        self.assertNotEqual(server_span.trace_id, CLIENT_TRACE)
        self.assertEqual(server_span.parent_span_id, b"")
        [sent] = self.backend.traceparents
        self.assertEqual(
            parse_traceparent([sent]).trace_id.to_bytes(16, "big"),
            server_span.trace_id,
        )
        [line] = self.logged()
        self.assertEqual(line["trace_id"], server_span.trace_id.hex())

    @inlineCallbacks
    def test_nothing_is_exported_at_a_sample_ratio_of_zero(self):
        yield self.start(trusted="127.0.0.1/32", ratio=0)
        yield self.get()
        yield self.stop()
        self.assertEqual(self.collector.spans, [])
        [sent] = self.backend.traceparents
        parent = parse_traceparent([sent])
        self.assertFalse(parent.sampled)
        [line] = self.logged()
        self.assertEqual(line["trace_id"], "%032x" % (parent.trace_id,))

    @inlineCallbacks
    def test_filters_that_wait_and_cache_lookups_have_spans(self):
        service = Backend()
        auth_port = yield listen(server.Site(service), self)
        yield self.start(
            trusted="127.0.0.1/32",
            ratio=1,
            route='filters = ["sso"]\ncache = "pages"',
            extra='[filters.sso]\ntype = "forward_auth"\n'
            'url = "http://127.0.0.1:%d/check"\n[caches.pages]\n' % (auth_port,),
        )
        yield self.get()
        yield self.get()
        yield self.stop()
        servers = self.collector.of_kind(Span.SPAN_KIND_SERVER)
        self.assertEqual(len(servers), 2)
        internal = self.collector.of_kind(Span.SPAN_KIND_INTERNAL)
        for server_span in servers:
            [auth, lookup] = sorted(
                (span for span in internal if span.parent_span_id == server_span.span_id),
                key=lambda span: span.start_time_unix_nano,
            )
            self.assertEqual(auth.name, "filter ForwardAuth")
            self.assertEqual(attributes(auth)["txrevproxy.filter.outcome"], "passed")
            self.assertEqual(lookup.name, "cache lookup")
        results = [
            attributes(span)["txrevproxy.cache.result"]
            for span in sorted(internal, key=lambda span: span.start_time_unix_nano)
            if span.name == "cache lookup"
        ]
        self.assertEqual(results, ["fwd=uri-miss", "hit"])
        # Only the miss went to the backend.
        self.assertEqual(len(self.collector.of_kind(Span.SPAN_KIND_CLIENT)), 1)
        # The auth service continues each request's trace from its server span.
        self.assertEqual(
            sorted(
                (parent.trace_id.to_bytes(16, "big"), parent.span_id.to_bytes(8, "big"))
                for parent in (parse_traceparent([sent]) for sent in service.traceparents)
            ),
            sorted((span.trace_id, span.span_id) for span in servers),
        )

    @inlineCallbacks
    def test_a_reload_replaces_the_tracing_only_when_its_table_changes(self):
        yield self.start(trusted="127.0.0.1/32", ratio=1)
        first = self.service.tracing
        self.assertEqual(self.service.reload(), [])
        self.assertIs(self.service.tracing, first)
        yield self.get()
        text = self.config_path.read_text()
        self.config_path.write_text(text.replace("sample_ratio = 1", "sample_ratio = 0"))
        self.assertEqual(self.service.reload(), [])
        self.assertIsNot(self.service.tracing, first)
        # The replaced tracing exports what it held once its runtime is
        # idle, which it is at once.
        yield until(lambda: self.collector.spans)
        yield self.get()
        yield self.stop()
        self.assertEqual(len(self.collector.of_kind(Span.SPAN_KIND_SERVER)), 1)
        self.assertEqual(len(self.backend.traceparents), 2)

    @inlineCallbacks
    def test_a_reload_without_the_table_stops_tracing(self):
        yield self.start(trusted="127.0.0.1/32", ratio=1)
        text = self.config_path.read_text()
        self.config_path.write_text(text.split("[tracing]")[0])
        self.assertEqual(self.service.reload(), [])
        self.assertIsNone(self.service.tracing)
        yield self.get(CLIENT_PARENT)
        self.assertEqual(self.backend.traceparents, [CLIENT_PARENT.encode("ascii")])
        [line] = self.logged()
        self.assertIsNone(line["trace_id"])

    @inlineCallbacks
    def test_a_request_that_joins_a_miss_in_flight_has_a_collapsed_lookup(self):
        held = Held()
        yield self.start(
            trusted="127.0.0.1/32",
            ratio=1,
            route='cache = "pages"',
            extra="[caches.pages]\n",
            backend=held,
        )
        first = self.get()
        yield until(lambda: held.requests)
        lookups = self.service.runtime.caches["pages"].metrics.lookups
        second = self.get()
        yield until(lambda: lookups[b"collapsed"])
        held.requests[0].setHeader(b"cache-control", b"max-age=60")
        held.answer(b"ok")
        yield first
        yield second
        yield self.stop()
        self.assertEqual(
            sorted(
                attributes(span)["txrevproxy.cache.result"]
                for span in self.collector.of_kind(Span.SPAN_KIND_INTERNAL)
            ),
            ["collapsed", "fwd=uri-miss"],
        )
        self.assertEqual(len(self.collector.of_kind(Span.SPAN_KIND_CLIENT)), 1)

    @inlineCallbacks
    def test_an_http2_request_is_traced_as_one(self):
        yield self.start(trusted="127.0.0.1/32", ratio=0, tls=True)
        client = yield connect_h2(self.tls_port)
        response = yield client.request(
            b"GET", b"/products", [(b"traceparent", CLIENT_PARENT.encode("ascii"))]
        )
        self.assertEqual((response.status, response.body), (200, b"ok"))
        client.transport.loseConnection()
        yield self.stop()
        [server_span] = self.collector.of_kind(Span.SPAN_KIND_SERVER)
        [client_span] = self.collector.of_kind(Span.SPAN_KIND_CLIENT)
        self.assertEqual(server_span.parent_span_id, CLIENT_SPAN)
        self.assertEqual(
            [
                attributes(server_span)[key]
                for key in ("network.protocol.version", "url.scheme", "url.path")
            ],
            ["2", "https", "/products"],
        )
        [sent] = self.backend.traceparents
        self.assertEqual(
            parse_traceparent([sent]).span_id.to_bytes(8, "big"), client_span.span_id
        )
