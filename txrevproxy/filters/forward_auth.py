"""
C{type = "forward_auth"}: ask an authentication service about each request
(nginx's C{auth_request}, Traefik's ForwardAuth); this is how SSO and
OAuth2 gateways (oauth2-proxy, Authelia, Authentik ...) plug in.

For each request the proxy sends a C{GET} to C{url} with the request's
header fields (hop-by-hop ones and the body's framing left out) and where
it was going: C{X-Forwarded-Method}, C{X-Forwarded-Proto},
C{X-Forwarded-Host}, C{X-Forwarded-Uri}, C{X-Forwarded-For} and
C{X-Original-URI} (the client's own fields of those names, or spelled with
C{_}, are not sent); with tracing on, the request's C{traceparent} instead
of the client's.  A 2xx answer lets the request through, with the
fields named in C{copy_headers} copied from that answer onto the request
the backend gets (any the client sent under those names, or spelled with
C{_}, or named in C{Connection}, are removed first, so a client can
neither forge them nor have the proxy drop them).  Any other answer is
the client's answer: its status, fields and body (up to 64 KiB), such as
a 302 to a login page or a 401.  When the service cannot be reached the
client gets 502, and 504 when it does not answer within C{timeout}.
"""

from __future__ import annotations

from typing import Tuple

import attr
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import Logger
from zope.interface import implementer

from ..config.schema import Field, Table, array_of
from ..config.values import duration, header_name, http_url
from ..http.headers import HOP_BY_HOP, folded_name, remove_client_copies
from ..http.trace_context import TRACEPARENT, TRACESTATE
from ..interfaces import Answer, IFilter
from .client import client_address

log = Logger()

#: The largest auth service body passed to the client.
MAX_BODY = 64 * 1024

#: Request fields never sent to the auth service.
_NOT_SENT = HOP_BY_HOP | {b"content-length", b"host", b"expect"}

#: With tracing on, the client's trace context is replaced by the
#: request's own (see L{txrevproxy.observe.tracing.RequestTrace.call_fields}).
_NOT_SENT_TRACED = _NOT_SENT | {TRACEPARENT, TRACESTATE}

#: The fields the proxy writes for the service: the client's own, under
#: any spelling the service could read as them (C{X_Original_URI}), are
#: never sent.
_WRITTEN = frozenset(
    [
        b"x-forwarded-method",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-uri",
        b"x-original-uri",
        b"x-forwarded-for",
        b"x-request-id",
    ]
)

#: Auth service fields never passed to the client.
_NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"date", b"server"}


@attr.s(frozen=True, auto_attribs=True)
class Options:
    url: str
    timeout: float = 5.0
    copy_headers: Tuple[str, ...] = ()


OPTIONS = Table(
    Options,
    {
        "url": Field(http_url("http://127.0.0.1:4180/auth")),
        "timeout": Field(duration, default="5s"),
        "copy_headers": Field(
            array_of(header_name, what='an array of header names such as ["X-User"]'),
            default=[],
        ),
    },
)


@implementer(IFilter)
class ForwardAuth:
    """
    @param reactor: for connections and time; L{None} while a configuration
        is only checked.
    """

    def __init__(self, options: Options, reactor) -> None:
        self._url = options.url.encode("ascii")
        self._timeout = options.timeout
        self._copy = tuple(
            name.lower().encode("ascii") for name in options.copy_headers
        )
        self._clock = reactor
        if reactor is not None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool

            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._http = HTTPClient(Agent(reactor, pool=self._pool))

    def request(self, request) -> Deferred:
        headers = {}
        trace = request.trace
        skipped = _NOT_SENT if trace is None else _NOT_SENT_TRACED
        for name, values in request.requestHeaders.getAllRawHeaders():
            lower = name.lower()
            if lower not in skipped and folded_name(lower) not in _WRITTEN:
                headers[name] = values
        if trace is not None:
            for name, value in trace.call_fields():
                headers[name] = [value]
        host = request.requestHeaders.getRawHeaders(b"host", [b""])[0]
        uri = request.uri
        headers.update(
            {
                b"X-Forwarded-Method": [request.method],
                b"X-Forwarded-Proto": [request.site.scheme],
                b"X-Forwarded-Host": [host],
                b"X-Forwarded-Uri": [uri],
                b"X-Original-URI": [uri],
                b"X-Forwarded-For": [client_address(request).encode("ascii")],
                b"X-Request-ID": [request.request_id],
            }
        )
        d = self._http.get(self._url, headers=headers, allow_redirects=False)
        d.addTimeout(self._timeout, self._clock)
        d.addCallback(self._answered, request)
        d.addErrback(self._failed, request)
        return d

    def _answered(self, response, request) -> Deferred:
        if 200 <= response.code < 300:
            for name in self._copy:
                remove_client_copies(request.requestHeaders, name)
                values = response.headers.getRawHeaders(name)
                if values:
                    request.requestHeaders.setRawHeaders(name, values)
            return _drain(response).addCallback(lambda _: None)
        fields = tuple(
            (name, value)
            for name, values in response.headers.getAllRawHeaders()
            if name.lower() not in _NOT_RETURNED
            for value in values
        )
        return read_bounded(response).addCallback(
            lambda body: Answer(response.code, fields, body)
        )

    def _failed(self, reason, request) -> Answer:
        if reason.check(DeferredTimeout):
            log.warn("forward_auth: {url} did not answer in time", url=self._url)
            return Answer(504)
        log.warn(
            "forward_auth: {url} failed: {reason}",
            url=self._url,
            reason=reason.getErrorMessage(),
        )
        return Answer(502)

    def response(self, request, status, headers) -> None:
        return None

    def close(self) -> Deferred:
        """
        Close the kept-alive connections to the auth service.
        """
        return self._pool.closeCachedConnections()


def _drain(response) -> Deferred:
    """
    Read and drop a body, so the connection can be reused.
    """
    import treq

    return treq.collect(response, lambda data: None)


def read_bounded(response, limit: int = MAX_BODY) -> Deferred:
    """
    A body, cut at C{limit} bytes, so a service cannot make the proxy hold
    more.
    """
    import treq

    parts = []
    size = [0]

    def collect(data: bytes) -> None:
        if size[0] < limit:
            parts.append(data[: limit - size[0]])
            size[0] += len(data)

    return treq.collect(response, collect).addCallback(lambda _: b"".join(parts))


def configure(options, context) -> ForwardAuth:
    parsed = OPTIONS(options)
    return ForwardAuth(parsed, context.reactor)
