"""
C{txrevproxy route}: which listener, route, upstream and backends a
request would take, and why each other route lost.

Nothing here decides anything: the request is parsed by the proxy's own
L{ProxySite} (over an in-memory transport), routed by the live
L{Router.explain}, which calls L{Router.select}, and its backend request
head is built by the route's own L{ProxyTarget}.  A redirect or a fixed
response is rendered by its own resource and shown as it would be sent.
"""

from __future__ import annotations

import json
import time
from typing import List, Optional, Sequence, Tuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..app.runtime import Runtime
from ..config.model import Config, Listener, Route
from ..filters.chain import FilteredResource
from ..forward.resource import ReverseProxyResource
from ..forward.split import SplitResource
from ..http.status import reason_phrase
from ..routing.router import ANY_HOST, EXACT_HOST, Candidate, Router
from ..server.site import ProxySite


class ExplainError(Exception):
    """
    The request cannot be explained; the message says why.
    """


class _Capture(Resource):
    """
    A root that keeps the request it is given, unanswered.
    """

    isLeaf = True
    request = None

    def render(self, request):
        self.request = request
        return NOT_DONE_YET


class _Transport(StringTransport):
    """
    An in-memory client connection, without a client certificate.
    """

    def getPeerCertificate(self):
        return None


def replay(site: ProxySite, head: bytes, client_ip: str, port: int = 80):
    """
    Parse a request head as the listener C{site} would, from a client at
    C{client_ip} connected to C{port}, and return the request before it is
    routed.

    @return: the request and its transport, or L{None} and the transport
        holding the answer when the proxy refuses the head (400).
    """
    capture = _Capture()
    # The listener's filters are part of the root resource, so they are
    # set aside with it: filters are listed by the explanation, never run
    # by it (one may call a service).
    root, site.resource = site.resource, capture
    try:
        channel = site.buildProtocol(None)
        address = IPv6Address if ":" in client_ip else IPv4Address
        transport = _Transport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", port),
            peerAddress=address("TCP", client_ip, 50000),
        )
        channel.makeConnection(transport)
        channel.dataReceived(head)
    finally:
        site.resource = root
    return capture.request, transport


def _unfiltered(resource):
    """
    The resource behind a listener's or a route's filters, which an
    explanation lists rather than runs.
    """
    if isinstance(resource, FilteredResource):
        return resource.resource
    return resource


def request_head(method: str, url: str, headers: Sequence[str]) -> bytes:
    """
    The bytes of the request C{METHOD URL} with C{Name: value} headers, as
    a client would send them: origin form, Host from the URL unless a
    header gives one.

    @raise ExplainError: for a URL that is not http or https, or a header
        without a colon.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        raise ExplainError("%s: expected an http:// or https:// URL" % (url,))
    authority, slash, target = rest.partition("/")
    authority, question, query = authority.partition("?")
    target = "/" + target + ("?" + query if question else "")
    lines = ["%s %s HTTP/1.1" % (method, target)]
    given = []
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise ExplainError(
                "%s: expected a header such as 'X-Env: beta'" % (header,)
            )
        given.append("%s: %s" % (name.strip(), value.strip()))
    if not any(line.lower().startswith("host:") for line in given):
        lines.append("Host: %s" % (authority,))
    lines.extend(given)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _endpoint_port(description: str) -> Optional[int]:
    """
    The TCP port of a server endpoint description, if it names one.
    """
    kind, _, rest = description.partition(":")
    if kind.lower() not in ("tcp", "tcp6", "ssl"):
        return None
    for argument in rest.split(":"):
        value = argument[5:] if argument.startswith("port=") else argument
        if value.isdigit():
            return int(value)
    return None


def _scheme(listener: Listener) -> str:
    https = listener.tls is not None or listener.endpoint.lower().startswith("ssl:")
    return "https" if https else "http"


def choose_listener(
    config: Config, url: str, name: Optional[str]
) -> Tuple[Listener, str]:
    """
    The listener a request for C{url} arrives on: the one named, else one
    of the URL's scheme on the URL's port, else the first of its scheme.

    @return: the listener, and a note on how it was chosen.
    @raise ExplainError: for an unknown name.
    """
    if name is not None:
        if name not in config.listeners:
            raise ExplainError(
                'no listener named "%s" (listeners: %s)'
                % (name, ", ".join(config.listeners))
            )
        return config.listeners[name], "named with --listener"
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    _, colon, port = authority.rpartition(":")
    if colon and port.isdigit():
        number = int(port)
    else:
        number = 443 if scheme == "https" else 80
    same_scheme = [
        each for each in config.listeners.values() if _scheme(each) == scheme
    ]
    for listener in same_scheme:
        if _endpoint_port(listener.endpoint) == number:
            return listener, "%s on port %d" % (scheme, number)
    if same_scheme:
        return same_scheme[0], "the first %s listener (none listens on port %d)" % (
            scheme,
            number,
        )
    first = next(iter(config.listeners.values()))
    return first, "the first listener (none is %s)" % (scheme,)


def describe_route(route: Route) -> str:
    """
    A route in one line: what it matches and what answers it.
    """
    parts = []
    if route.hosts:
        parts.append("host %s" % (" ".join(json.dumps(h) for h in route.hosts),))
    parts.append("path %s" % (json.dumps(route.path),))
    if route.methods:
        parts.append("methods %s" % (" ".join(route.methods),))
    parts.extend("header %s" % (name,) for name, _ in route.headers)
    parts.extend("query %s" % (name,) for name, _ in route.query)
    parts.extend("match %s" % (matcher.type,) for matcher in route.match)
    if route.priority:
        parts.append("priority %d" % (route.priority,))
    if route.redirect is not None:
        answer = "redirect %d to %s" % (
            route.redirect.status,
            json.dumps(route.redirect.to.text),
        )
    elif route.respond is not None:
        answer = "respond %d" % (route.respond.status,)
    elif route.upstreams:
        answer = "upstreams %s" % (
            ", ".join(
                "%s (weight %d)" % (json.dumps(side.name), side.weight)
                for side in route.upstreams
            ),
        )
    else:
        answer = "upstream %s" % (json.dumps(route.upstream),)
    if route.mirror is not None:
        answer += ", mirror %s" % (json.dumps(route.mirror),)
    return "routes[%d] (%s) -> %s" % (route.index, ", ".join(parts), answer)


#: Why a request has no route, by the status it gets.
_NO_ROUTE = {
    400: (
        "the Host is not a host name",
        "the path has a malformed % escape, or a dot segment behind an encoded slash",
    ),
    404: "no route matches",
    421: "no route names this host, and none is for any host",
}


def _why(candidate: Candidate) -> str:
    route = candidate.route
    host = {
        EXACT_HOST: "its host",
        ANY_HOST: "any host",
    }.get(candidate.host_kind, "its wildcard host")
    why = "prefix %s, %s" % (json.dumps(route.path), host)
    if candidate.matchers is not None:
        why += ", " + ", ".join(part.description for part in candidate.matchers.parts)
    return why


def _filter_names(listener: Listener, chosen, filters) -> str:
    """
    The filters a request meets: the listener's, then its route's, each
    with what it does when it says so (its C{description}).
    """
    names = [(name, "listener") for name in listener.filters]
    if isinstance(chosen, Candidate):
        names += [(name, "route") for name in chosen.route.filters]
    shown = []
    for name, where in names:
        description = getattr(filters.get(name), "description", None)
        if description:
            where += ": " + description
        shown.append("%s (%s)" % (name, where))
    return ", ".join(shown)


def _split(resource: SplitResource, route: Route, request) -> Tuple[str, List[str]]:
    """
    The side of a split route this request takes, and the lines that say
    why: an override or the sticky cookie decides, or a draw by weight,
    which the explanation shows as the heaviest side.
    """
    chooser = resource.chooser
    shares = ", ".join(
        "%s %g%%" % (name, share) for name, share in chooser.shares().items()
    )
    lines = ["split:    %s" % (shares,)]
    choice = chooser.decided(request.requestHeaders)
    if choice is not None:
        lines.append("side:     %s (by the %s)" % (choice.side, choice.reason))
        return choice.side, lines
    heaviest = max(route.upstreams, key=lambda side: side.weight).name
    lines.append(
        "side:     drawn at random by weight for each request; shown: %s, the "
        "heaviest" % (heaviest,)
    )
    if route.split_cookie is not None:
        lines.append(
            "          the %s cookie then keeps the client on the side drawn"
            % (route.split_cookie,)
        )
    return heaviest, lines


def _head_lines(data: bytes) -> List[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line.decode("utf-8", "replace") for line in head.split(b"\r\n")]


def explain(
    config: Config,
    method: str,
    url: str,
    headers: Sequence[str] = (),
    listener_name: Optional[str] = None,
    client_ip: str = "127.0.0.1",
) -> List[str]:
    """
    The explanation of one request, as lines of text.

    @raise ExplainError: for a request that cannot be made.
    """
    head = request_head(method, url, headers)
    listener, how = choose_listener(config, url, listener_name)
    clock = MemoryReactorClock()
    clock.advance(time.time())
    runtime = Runtime(config, clock)
    for name, each in config.listeners.items():
        runtime.ports[name] = _endpoint_port(each.endpoint) or 443
    lines = [
        "request:  %s %s" % (method, url),
        "listener: %s (%s; %s)" % (listener.name, listener.endpoint, how),
    ]
    site = runtime.sites[listener.name]
    request, transport = replay(site, head, client_ip, runtime.ports[listener.name])
    if request is None:
        return (
            lines
            + ["answer:   refused before routing"]
            + ["  " + line for line in _head_lines(transport.value())]
        )
    root = _unfiltered(site.resource)
    if not isinstance(root, Router):
        request.renderLeaf(root)
        return (
            lines
            + [
                "answer:   redirect_to_https = %s (every request on this listener)"
                % (json.dumps(listener.redirect_to_https),)
            ]
            + ["  " + line for line in _head_lines(transport.value())]
        )
    explanation = root.explain(request)
    lines.append(
        "host:     %s" % (explanation.host.decode("ascii", "replace") or "(none)",)
    )
    if explanation.tree is not None:
        lines[-1] += " -> %s" % (explanation.tree.description,)
    if explanation.path is not None:
        lines.append("path:     %s" % (explanation.path.decode("ascii", "replace"),))
    chosen = explanation.chosen
    resource = None
    if isinstance(chosen, Candidate):
        lines.append("route:    %s" % (describe_route(chosen.route),))
        lines.append("          matched: %s" % (_why(chosen),))
        resource = _unfiltered(chosen.resource)
    else:
        why = _NO_ROUTE[chosen]
        if chosen == 400:
            why = why[explanation.path is None]
        lines.append(
            "route:    none: %d %s (%s)"
            % (chosen, reason_phrase(chosen).decode("ascii"), why)
        )
    if explanation.others:
        lines.append("other routes:")
        for route, reason in explanation.others:
            lines.append("  %s" % (describe_route(route),))
            lines.append("      %s" % (reason,))
    applied = _filter_names(listener, chosen, runtime.filters)
    if applied:
        lines.append("filters:  %s (run in this order; not run here)" % (applied,))
    if isinstance(chosen, Candidate) and chosen.route.cache is not None:
        lines.append(
            "cache:    %s (a stored fresh response would answer; not looked up here)"
            % (chosen.route.cache,)
        )
    side = None
    if isinstance(resource, SplitResource):
        side, explained = _split(resource, chosen.route, request)
        lines.extend(explained)
        resource = resource.sides[side]
    if not isinstance(resource, ReverseProxyResource):
        if resource is not None:
            request.renderLeaf(resource)
        else:
            request.renderLeaf(site.resource)
        return (
            lines
            + ["answer:"]
            + ["  " + line for line in _head_lines(transport.value())]
        )
    target = resource.target
    upstream = config.upstreams[side or chosen.route.upstream]
    backends = target.balancer.backends
    lines.append("upstream: %s (balance %s)" % (upstream.name, upstream.balance))
    listed = [b.server.url for b in backends] + [
        "%s %s%s (resolved at run time)"
        % (entry.lookup, entry.host, ":%d" % (entry.port,) if entry.port else "")
        for entry in upstream.lookups
    ]
    lines.append("backends: %s" % (", ".join(listed),))
    # With only dns and srv entries, no backend exists before a lookup:
    # the head is shown as the first entry's servers would get it.
    server = backends[0].server if backends else upstream.lookups[0]
    sent = target.request_head(request, server, None, request.requestedUpgrade())
    lines.append("sent to %s:" % (server.url,))
    lines.extend("  " + line for line in _head_lines(sent))
    mirror = target.mirror
    if mirror is not None:
        lines.append(
            "mirror:   %s: a copy of %d%% of the requests, with bodies up to %d "
            "bytes, within %s s; its answers are dropped"
            % (
                mirror.upstream,
                mirror.percent,
                mirror.max_body,
                "%g" % (chosen.route.mirror_timeout,),
            )
        )
    rewrite = target.response_rewrite
    if rewrite is None:
        lines.append("response rewrites: none")
    else:
        lines.append("response rewrites:")
        lines.extend("  " + line for line in rewrite.describe())
    return lines
