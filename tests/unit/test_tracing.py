"""
Tracing in memory: whose traceparent is believed, which requests are
recorded, the spans of a request and of its backend attempts (recorded by
the SDK into memory), the traceparent each attempt sends, and the
C{[tracing]} table.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from twisted.internet.defer import Deferred

from txrevproxy.config.model import TracingSettings
from txrevproxy.filters.chain import FilteredResource
from txrevproxy.http.trace_context import parse_traceparent
from txrevproxy.interfaces import Answer
from txrevproxy.observe.tracing import Tracing, believed, sampled

from ..support.configs import document, parse, problems
from ..support.proxies import OK, Proxy, status

CLIENT_PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CLIENT_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN = 0x00F067AA0BA902B7


def test_trusted_proxies_believes_only_trusted_peers():
    assert believed("trusted_proxies", True)
    assert not believed("trusted_proxies", False)


def test_always_and_never_ignore_the_peer():
    assert believed("always", False) and believed("always", True)
    assert not believed("never", True) and not believed("never", False)


def test_a_parent_decides_whatever_the_ratio():
    sampled_parent = parse_traceparent([CLIENT_PARENT])
    unsampled_parent = parse_traceparent([CLIENT_PARENT[:-2] + b"00"])
    assert sampled(sampled_parent, 0.0, 0.99)
    assert not sampled(unsampled_parent, 1.0, 0.0)


def test_without_a_parent_the_draw_decides_by_the_ratio():
    assert sampled(None, 0.1, 0.05)
    assert not sampled(None, 0.1, 0.1)
    assert not sampled(None, 0.0, 0.0)
    assert sampled(None, 1.0, 0.999)


class Traced:
    """
    A proxy in memory (see L{Proxy}) whose site traces with C{settings},
    into an in-memory exporter, and ends each request's trace as the
    request observer does.
    """

    def __init__(self, draw: float = 0.0, count: int = 2, **settings) -> None:
        self.proxy = Proxy(count=count, retries=1)
        self.exporter = InMemorySpanExporter()

        def provider(settings):
            made = TracerProvider()
            made.add_span_processor(SimpleSpanProcessor(self.exporter))
            return made

        settings.setdefault("sample_ratio", 0.5)
        self.tracing = Tracing(
            TracingSettings(**settings), self.proxy.clock, lambda: draw, provider
        )
        self.tracing.start()
        site = self.proxy.site
        site.tracing = self.tracing
        site.observe = lambda request: request.trace.finish(
            request, "shop", "app", self.proxy.clock.seconds()
        )

    def request(self, headers: bytes = b"", trusted: bool = False):
        channel, client = self.proxy.client()
        channel.trusted = trusted
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: h\r\n" + headers + b"\r\n")
        return channel.requests[-1] if channel.requests else None, client

    def sent(self, index: int) -> bytes:
        """
        The request head backend C{index} got last.
        """
        return self.proxy.connection(index).transport.value()

    def spans(self, kind=None):
        return [
            span
            for span in self.exporter.get_finished_spans()
            if kind is None or span.kind == kind
        ]


def traceparent_sent(head: bytes) -> bytes:
    [value] = [
        line.split(b": ", 1)[1]
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"traceparent:")
    ]
    return value


def test_a_believed_parent_is_continued_to_the_backend():
    traced = Traced(trust_incoming="trusted_proxies")
    request, client = traced.request(
        b"traceparent: %s\r\ntracestate: rojo=1\r\n" % (CLIENT_PARENT,), trusted=True
    )
    traced.proxy.connection(0).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    [server] = traced.spans(SpanKind.SERVER)
    [attempt] = traced.spans(SpanKind.CLIENT)
    assert server.context.trace_id == CLIENT_TRACE
    assert server.parent.span_id == CLIENT_SPAN and server.parent.is_remote
    assert attempt.parent.span_id == server.context.span_id
    sent = parse_traceparent([traceparent_sent(traced.sent(0))])
    assert (sent.trace_id, sent.span_id, sent.sampled) == (
        CLIENT_TRACE,
        attempt.context.span_id,
        True,
    )
    assert b"tracestate: rojo=1\r\n" in traced.sent(0)
    assert traced.sent(0).lower().count(b"traceparent") == 1
    assert request.trace.trace_id_text() == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_server_span_says_what_the_request_was():
    traced = Traced()
    traced.request(b"User-Agent: curl/8\r\n")
    traced.proxy.connection(0).dataReceived(OK)
    [server] = traced.spans(SpanKind.SERVER)
    assert server.name == "GET shop"
    assert dict(server.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/x",
        "server.address": "h",
        "server.port": 12345,
        "client.address": "192.0.2.1",
        "network.protocol.version": "1.1",
        "txrevproxy.request_id": server.attributes["txrevproxy.request_id"],
        "user_agent.original": "curl/8",
        "http.response.status_code": 200,
        "http.route": "shop",
        "txrevproxy.upstream": "app",
    }
    assert server.status.status_code is StatusCode.UNSET
    [attempt] = traced.spans(SpanKind.CLIENT)
    assert attempt.attributes["server.address"] == "10.0.0.1"
    assert attempt.attributes["server.port"] == 80
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["txrevproxy.attempt"] == 1


def test_an_untrusted_peers_traceparent_is_replaced():
    traced = Traced(draw=0.0)
    request, _ = traced.request(b"traceparent: %s\r\n" % (CLIENT_PARENT,))
    traced.proxy.connection(0).dataReceived(OK)
    [server] = traced.spans(SpanKind.SERVER)
    assert server.context.trace_id != CLIENT_TRACE
    assert not server.parent
    sent = parse_traceparent([traceparent_sent(traced.sent(0))])
    assert sent.trace_id == server.context.trace_id
    assert b"tracestate" not in traced.sent(0).lower()


def test_a_request_not_sampled_records_nothing_but_still_passes_a_traceparent():
    traced = Traced(draw=0.9)
    request, client = traced.request()
    traced.proxy.connection(0).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    assert traced.spans() == []
    sent = parse_traceparent([traceparent_sent(traced.sent(0))])
    assert sent.trace_id == request.trace.trace_id and not sent.sampled


def test_an_unsampled_believed_parent_keeps_its_trace_unrecorded():
    traced = Traced(draw=0.0, trust_incoming="always")
    unsampled = CLIENT_PARENT[:-2] + b"00"
    traced.request(b"traceparent: %s\r\n" % (unsampled,))
    traced.proxy.connection(0).dataReceived(OK)
    assert traced.spans() == []
    sent = parse_traceparent([traceparent_sent(traced.sent(0))])
    assert sent.trace_id == CLIENT_TRACE and sent.span_id != CLIENT_SPAN
    assert not sent.sampled


def test_a_retry_is_a_client_span_of_its_own():
    traced = Traced()
    traced.proxy.endpoints[0].refuse = True
    request, client = traced.request()
    traced.proxy.connection(1).dataReceived(OK)
    assert status(client) == b"HTTP/1.1 200 OK"
    first, second = traced.spans(SpanKind.CLIENT)
    assert [span.attributes["txrevproxy.attempt"] for span in (first, second)] == [1, 2]
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["error.type"] == "refused"
    assert second.attributes["http.request.resend_count"] == 1
    assert second.status.status_code is StatusCode.UNSET
    [server] = traced.spans(SpanKind.SERVER)
    assert {first.parent.span_id, second.parent.span_id} == {server.context.span_id}
    sent = parse_traceparent([traceparent_sent(traced.sent(1))])
    assert sent.span_id == second.context.span_id


def test_a_failed_request_marks_its_spans_with_the_cause():
    traced = Traced(count=1)
    traced.proxy.endpoints[0].refuse = True
    request, client = traced.request()
    assert status(client) == b"HTTP/1.1 502 Bad Gateway"
    [attempt] = traced.spans(SpanKind.CLIENT)
    [server] = traced.spans(SpanKind.SERVER)
    assert attempt.attributes["error.type"] == "refused"
    assert server.attributes["error.type"] == "refused"
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == 502


def test_a_backend_error_status_marks_the_client_span():
    traced = Traced()
    traced.request()
    traced.proxy.connection(0).dataReceived(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    )
    [attempt] = traced.spans(SpanKind.CLIENT)
    [server] = traced.spans(SpanKind.SERVER)
    assert attempt.attributes["error.type"] == "503"
    assert server.status.status_code is StatusCode.ERROR


def test_spans_are_timed_by_the_reactor_clock():
    traced = Traced()
    traced.proxy.clock.advance(100)
    traced.request()
    traced.proxy.clock.advance(2)
    traced.proxy.connection(0).dataReceived(OK)
    [server] = traced.spans(SpanKind.SERVER)
    assert server.start_time == 100 * 10**9
    assert server.end_time == 102 * 10**9


def test_a_waiting_span_ends_with_its_attributes():
    traced = Traced()
    request, _ = traced.request()
    span = request.trace.begin_span("filter Slow")
    traced.proxy.clock.advance(1)
    request.trace.end_span(span, {"txrevproxy.filter.outcome": "passed"})
    [internal] = traced.spans(SpanKind.INTERNAL)
    assert internal.name == "filter Slow"
    assert internal.parent.span_id == request.trace.span.get_span_context().span_id
    assert internal.end_time - internal.start_time == 10**9


def test_an_unrecorded_request_has_no_spans_to_begin():
    traced = Traced(draw=0.9)
    request, _ = traced.request()
    assert request.trace.begin_span("filter Slow") is None
    request.trace.end_span(None, {})


def test_without_tracing_the_clients_traceparent_passes_unchanged():
    proxy = Proxy(count=1)
    channel, client = proxy.client(
        b"GET /x HTTP/1.1\r\nHost: h\r\ntraceparent: %s\r\n\r\n" % (CLIENT_PARENT,)
    )
    assert channel.requests[-1].trace is None
    assert traceparent_sent(proxy.connection(0).transport.value()) == CLIENT_PARENT


def test_the_tracing_table_has_its_defaults():
    config = parse(document(extra="[tracing]\n"))
    assert config.tracing == TracingSettings()
    assert parse(document()).tracing is None


def test_the_tracing_table_is_read():
    config = parse(
        document(
            extra='[tracing]\nendpoint = "https://otel.test/v1/traces"\n'
            'service_name = "edge"\nsample_ratio = 1\ntrust_incoming = "never"\n'
            'headers = { Authorization = "Bearer abc" }\ntimeout = "3s"\n'
            'batch_delay = "250ms"\nbatch_size = 10\nqueue_size = 100\n'
        )
    )
    assert config.tracing == TracingSettings(
        "https://otel.test/v1/traces", "edge", 1.0, "never",
        (("Authorization", "Bearer abc"),), 3.0, 0.25, 10, 100,
    )


def test_bad_tracing_keys_are_problems_with_their_paths():
    assert problems(
        document(
            extra='[tracing]\nendpoint = "udp://x"\nsample_ratio = 1.5\n'
            'trust_incoming = "sometimes"\nheaders = { "X-A" = " padded" }\n'
            "queue_size = 0\nbatch_delay = 5\nlevel = 1\n"
        )
    ) == [
        'tracing.level: unknown key (known keys: batch_delay, batch_size, '
        "endpoint, headers, queue_size, sample_ratio, service_name, timeout, "
        "trust_incoming)",
        'tracing.endpoint: expected an http:// or https:// URL with a host, got "udp://x"',
        "tracing.sample_ratio: must be from 0 to 1, got 1.5",
        'tracing.trust_incoming: unknown value "sometimes"; expected one of '
        '"trusted_proxies", "always", "never"',
        'tracing.headers.X-A: expected printable ASCII text, got " padded"',
        'tracing.batch_delay: expected a duration such as "5s", got 5',
        "tracing.queue_size: must be at least 1, got 0",
    ]


def test_a_batch_larger_than_the_queue_is_a_problem():
    assert problems(document(extra="[tracing]\nbatch_size = 100\nqueue_size = 10\n")) == [
        "tracing.batch_size: must not be more than queue_size (10), got 100"
    ]


class Waits:
    """
    A filter that decides later: its L{Deferred}s are in C{pending}.
    """

    def __init__(self) -> None:
        self.pending = []

    def request(self, request):
        self.pending.append(Deferred())
        return self.pending[-1]

    def response(self, request, status, headers):
        return None


def filtered(traced: Traced) -> Waits:
    waits = Waits()
    site = traced.proxy.site
    site.resource = FilteredResource([waits], site.resource)
    return waits


def test_a_filter_that_waits_has_a_span_that_says_how_it_decided():
    traced = Traced()
    waits = filtered(traced)
    traced.request()
    traced.proxy.clock.advance(1)
    waits.pending[0].callback(None)
    traced.proxy.connection(0).dataReceived(OK)
    traced.request()
    waits.pending[1].callback(Answer(401))
    traced.request()
    waits.pending[2].errback(RuntimeError("the service broke"))
    assert [
        (span.name, span.attributes["txrevproxy.filter.outcome"])
        for span in traced.spans(SpanKind.INTERNAL)
    ] == [
        ("filter Waits", "passed"),
        ("filter Waits", "401"),
        ("filter Waits", "failed"),
    ]
    first = traced.spans(SpanKind.INTERNAL)[0]
    assert first.end_time - first.start_time == 10**9
    assert [
        span.attributes["http.response.status_code"]
        for span in traced.spans(SpanKind.SERVER)
    ] == [200, 401, 500]


def test_a_call_for_the_request_is_parented_by_its_server_span():
    traced = Traced(trust_incoming="always")
    request, _ = traced.request(
        b"traceparent: %s\r\ntracestate: rojo=1\r\n" % (CLIENT_PARENT,)
    )
    fields = dict(request.trace.call_fields())
    parent = parse_traceparent([fields[b"traceparent"]])
    assert (parent.trace_id, parent.span_id, parent.sampled) == (
        CLIENT_TRACE,
        request.trace.span.get_span_context().span_id,
        True,
    )
    assert fields[b"tracestate"] == b"rojo=1"


def test_a_call_for_an_unrecorded_request_keeps_its_trace_unrecorded():
    traced = Traced(draw=0.9)
    request, _ = traced.request()
    [(name, value)] = request.trace.call_fields()
    parent = parse_traceparent([value])
    assert parent.trace_id == request.trace.trace_id and not parent.sampled
