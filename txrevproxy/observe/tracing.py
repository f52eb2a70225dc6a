"""
OpenTelemetry traces of the requests (the C{[tracing]} table): a server
span for each request, a client span for each attempt on a backend, and
spans for the filters that wait and the cache lookups, exported over
OTLP/HTTP by the OpenTelemetry SDK.

The proxy decides itself whether a request is recorded, before the SDK
hears of it: tracing off costs one attribute check per request (the
site's L{Tracing} is L{None}), and a request not sampled costs a random
draw and a C{traceparent} for its backend, never an SDK span.  The SDK
is imported only when a configuration turns tracing on.  Spans are
queued as they end, and the SDK's batch processor exports them from its
own thread, so the reactor never waits on the collector.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from .. import __version__
from ..config.model import TracingSettings
from ..http.trace_context import (
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    format_traceparent,
    parse_traceparent,
    parse_tracestate,
    trace_id_text,
)

#: The instrumentation scope of every span.
SCOPE = "txrevproxy"


def believed(trust_incoming: str, peer_trusted: bool) -> bool:
    """
    Whether a client's C{traceparent} is followed, by C{[tracing]
    trust_incoming}: a trusted proxy's (C{"trusted_proxies"}), anyone's
    (C{"always"}) or nobody's (C{"never"}).  A traceparent not believed
    is replaced: the request starts a new trace.
    """
    if trust_incoming == "trusted_proxies":
        return peer_trusted
    return trust_incoming == "always"


def sampled(parent: Optional[TraceParent], ratio: float, draw: float) -> bool:
    """
    Whether a request is recorded: as its believed parent decided, else
    when the random C{draw} (from 0 to 1) falls below C{ratio} (the
    OpenTelemetry "parent-based" sampling).
    """
    if parent is not None:
        return parent.sampled
    return draw < ratio


def sdk_provider(settings: TracingSettings):
    """
    The SDK's tracer provider of C{settings}: an OTLP/HTTP exporter behind
    a batch processor (whose thread starts now), and every span it is
    given recorded (L{Tracing} sampled already).
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        ),
        shutdown_on_exit=False,
    )
    exporter = OTLPSpanExporter(
        endpoint=settings.endpoint,
        headers=dict(settings.headers),
        timeout=settings.timeout,
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.queue_size,
            schedule_delay_millis=settings.batch_delay * 1000,
            max_export_batch_size=settings.batch_size,
            export_timeout_millis=settings.timeout * 1000,
        )
    )
    return provider


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Tracing:
    """
    The traces of one C{[tracing]} table: which requests are recorded, and
    the SDK tracer that records them.  Made with the service (or by a
    reload that changes the table), L{start}ed with it, and L{stop}ped
    when the service stops or a reload replaced it.

    @ivar settings: the L{TracingSettings}.
    @param clock: the reactor's clock: spans are timed as the access log
        times requests.
    @param draw: the random draw of L{sampled}.
    @param provider: makes the SDK's tracer provider of the settings
        (tests pass one with an exporter of their own).
    """

    def __init__(
        self,
        settings: TracingSettings,
        clock,
        draw=random.random,
        provider=sdk_provider,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._draw = draw
        self._make_provider = provider
        self._provider = None
        self.tracer = None

    def start(self) -> None:
        """
        Make the SDK's provider, whose exporter thread starts now: after
        twistd forked, not before.
        """
        self._provider = self._make_provider(self.settings)
        self.tracer = self._provider.get_tracer(SCOPE, __version__)

    def stop(self, reactor) -> Deferred:
        """
        Export the spans still queued and stop the exporter, in the
        reactor's thread pool (the SDK's shutdown waits for the
        collector).  A span that ends afterwards is dropped by the SDK.

        @return: a L{Deferred} that fires once that is done.
        """
        provider, self._provider = self._provider, None
        if provider is None:
            return succeed(None)
        return deferToThreadPool(reactor, reactor.getThreadPool(), provider.shutdown)

    def begin(self, request) -> "RequestTrace":
        """
        The trace of a request whose head is in: the client's
        C{traceparent} is followed when L{believed}, and the request is
        recorded when L{sampled}.
        """
        parent = tracestate = None
        headers = request.requestHeaders
        if believed(self.settings.trust_incoming, request.connection.trusted):
            parent = parse_traceparent(headers.getRawHeaders(TRACEPARENT))
            if parent is not None:
                tracestate = parse_tracestate(headers.getRawHeaders(TRACESTATE))
        trace = RequestTrace(self, tracestate)
        if self.tracer is not None and sampled(
            parent, self.settings.sample_ratio, self._draw()
        ):
            trace.record(request, parent)
        elif parent is not None:
            trace.trace_id = parent.trace_id
        else:
            trace.trace_id = random.getrandbits(128) or 1
        return trace


def _remote_parent(parent: TraceParent):
    """
    The SDK context whose span is the caller's, as a C{traceparent} names
    it.
    """
    from opentelemetry import trace

    return trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                parent.trace_id,
                parent.span_id,
                is_remote=True,
                trace_flags=trace.TraceFlags(parent.flags & trace.TraceFlags.SAMPLED),
            )
        )
    )


class RequestTrace:
    """
    One request's part of its trace (the request's C{trace}).  A request
    that is not recorded has a trace ID and a C{traceparent} for its
    backend, and no span: every method but L{attempt} then does nothing.

    @ivar trace_id: the trace's ID.
    @ivar traceparent: what the current backend attempt is sent, naming
        its client span as the parent.
    @ivar tracestate: the believed client's C{tracestate}, passed on, or
        L{None}.
    @ivar span: the request's server span, or L{None} when not recorded.
    """

    __slots__ = (
        "_tracing", "trace_id", "traceparent", "tracestate", "span", "_context",
        "_method", "_attempt", "_attempts",
    )

    def __init__(self, tracing: Tracing, tracestate: Optional[bytes]) -> None:
        self._tracing = tracing
        self.tracestate = tracestate
        self.trace_id = 0
        self.traceparent = b""
        self.span = None
        self._context = None
        self._attempt = None
        self._attempts = 0

    def record(self, request, parent: Optional[TraceParent]) -> None:
        """
        Start the server span of C{request} (named again with its route at
        L{finish}), as a child of the believed C{parent}.
        """
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanKind, set_span_in_context

        context = Context() if parent is None else _remote_parent(parent)
        connection = request.connection
        method = self._method = _text(request.method)
        host = request.requestHeaders.getRawHeaders(b"host", [b""])[0]
        attributes: Dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": _text(request.site.scheme),
            "server.address": _text(_host_name(host)),
            "client.address": _text(connection.client_ip),
            "network.protocol.version": _text(request.clientproto.split(b"/")[-1]),
            "txrevproxy.request_id": _text(request.request_id),
        }
        if connection.local_port is not None:
            attributes["server.port"] = int(connection.local_port)
        agent = request.requestHeaders.getRawHeaders(b"user-agent")
        if agent:
            attributes["user_agent.original"] = _text(agent[0])
        span = self.span = self._tracing.tracer.start_span(
            method,
            context=context,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=_ns(request.started),
        )
        self.trace_id = span.get_span_context().trace_id
        self._context = set_span_in_context(span)

    def attempt(self, server) -> None:
        """
        The request goes to backend C{server} (the first try or a retry):
        a client span when recorded, and the C{traceparent} it is sent.
        """
        span = self.span
        self._attempts += 1
        if span is None:
            self.traceparent = self._traceparent(None)
            return
        from opentelemetry.trace import SpanKind

        # An exchange ends a failed attempt before the next (see
        # attempt_failed); one that would not still gets its span ended.
        self._end_attempt()
        attributes: Dict[str, Any] = {
            "http.request.method": self._method,
            "server.address": server.host,
            "server.port": server.port,
            "url.full": server.url,
            "txrevproxy.attempt": self._attempts,
        }
        if self._attempts > 1:
            attributes["http.request.resend_count"] = self._attempts - 1
        attempt = self._attempt = self._tracing.tracer.start_span(
            self._method,
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=_ns(self._tracing.clock.seconds()),
        )
        self.traceparent = self._traceparent(attempt)

    def _traceparent(self, span) -> bytes:
        """
        A C{traceparent} naming C{span} as the parent, or, when the request
        is not recorded (no span), a new span ID and the flag C{00}.
        """
        if span is None:
            return format_traceparent(self.trace_id, random.getrandbits(64) or 1, False)
        return format_traceparent(self.trace_id, span.get_span_context().span_id, True)

    def call_fields(self) -> List[Tuple[bytes, bytes]]:
        """
        The trace context of a call made for the request to a service
        other than its backend (C{forward_auth}'s): a C{traceparent}
        naming the server span as the parent (a new span ID when the
        request is not recorded), and the believed C{tracestate}.
        """
        fields = [(TRACEPARENT, self._traceparent(self.span))]
        if self.tracestate is not None:
            fields.append((TRACESTATE, self.tracestate))
        return fields

    def answered(self, status: int) -> None:
        """
        The backend of the current attempt answered with C{status}.
        """
        attempt = self._attempt
        if attempt is not None:
            attempt.set_attribute("http.response.status_code", status)
            if status >= 400:
                _failed(attempt, str(status))

    def attempt_failed(self, cause: str) -> None:
        """
        The current attempt failed for C{cause} (a word of
        L{txrevproxy.forward.causes}) before its backend answered.
        """
        attempt = self._attempt
        if attempt is not None:
            _failed(attempt, cause)
            self._end_attempt()

    def _end_attempt(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.end(_ns(self._tracing.clock.seconds()))

    def begin_span(self, name: str):
        """
        Start a span of something the request waits for (a filter that
        asks a service), or L{None} when the request is not recorded; end
        it with L{end_span}.
        """
        if self.span is None:
            return None
        return self._tracing.tracer.start_span(
            name, context=self._context, start_time=_ns(self._tracing.clock.seconds())
        )

    def end_span(self, span, attributes: Dict[str, Any]) -> None:
        """
        End a span of L{begin_span} (nothing for L{None}), with
        C{attributes}.
        """
        if span is not None:
            span.set_attributes(attributes)
            span.end(_ns(self._tracing.clock.seconds()))

    def finish(
        self, request, route: Optional[str], upstream: Optional[str], now: float
    ) -> None:
        """
        The request is over (see L{txrevproxy.observe.requests}): end the
        current attempt and the server span, with what the request came
        to.  A request the proxy failed (its C{error_cause}) has both
        marked as errors with that cause, as the error log tells it.
        """
        span = self.span
        if span is None:
            return
        cause = request.error_cause
        if self._attempt is not None:
            if cause is not None:
                _failed(self._attempt, cause)
            self._end_attempt()
        code = request.code
        span.set_attribute("http.response.status_code", code)
        if request.path is not None:
            # Known once the target was checked, after the span started.
            span.set_attribute("url.path", _text(request.path))
        if route is not None:
            span.update_name("%s %s" % (self._method, route))
            span.set_attribute("http.route", route)
        if upstream is not None:
            span.set_attribute("txrevproxy.upstream", upstream)
        if cause is not None:
            _failed(span, cause)
        elif code >= 500:
            _failed(span, str(code))
        span.end(_ns(now))

    def trace_id_text(self) -> str:
        """
        The trace ID as the access log writes it (as a trace viewer
        shows it).
        """
        return trace_id_text(self.trace_id)


def _failed(span, cause: str) -> None:
    """
    Mark a span as an error of C{cause} (OpenTelemetry's C{error.type}).
    """
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", cause)
    span.set_status(Status(StatusCode.ERROR, cause))


def _host_name(host: bytes) -> bytes:
    """
    The name or address of a Host value, without its port.
    """
    if host.endswith(b"]") or b":" not in host:
        return host
    return host.rsplit(b":", 1)[0]


def _text(value: bytes) -> str:
    return value.decode("ascii", "backslashreplace")
