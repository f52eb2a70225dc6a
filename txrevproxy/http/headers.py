"""
Header rules of an HTTP intermediary (RFC 9110 section 7.6, RFC 9112).

Pure functions over lists of C{(name, value)} byte pairs: which headers are
hop-by-hop, what the proxy adds on the way to the backend (X-Forwarded-*,
Via, X-Request-ID) and what it passes back to the client.  Nothing here
touches a transport, so every rule is tested without a reactor.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from twisted.web.http import datetimeToString

from .forwarded import extend_forwarded, hop_element

Header = Tuple[bytes, bytes]

#: Headers that describe one connection and never cross the proxy
#: (RFC 9110 section 7.6.1, plus the de-facto Keep-Alive and
#: Proxy-Connection).  Content-Length is not hop-by-hop, but the proxy
#: re-frames every message, so it sets its own.
HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    ]
)

#: Response headers that name the backend's software stack and its
#: version: of no use to a client, a guide to an attacker.  The proxy drops
#: them unless a route keeps them (C{pass_backend_banners}).  The names
#: are those of the OWASP Secure Headers Project's list of headers to
#: remove and of webhint's C{disallow-headers} that only name a product;
#: nothing a client or a cache acts on is here.
BACKEND_BANNERS = frozenset(
    [
        b"server",
        b"x-powered-by",
        b"x-aspnet-version",
        b"x-aspnetmvc-version",
        b"x-runtime",
        b"x-generator",
        b"x-drupal-cache",
        b"x-drupal-dynamic-cache",
        b"x-mod-pagespeed",
        b"x-page-speed",
    ]
)

_HOP_BY_HOP_AND_BANNERS = HOP_BY_HOP | BACKEND_BANNERS


def response_skipped(pass_banners: bool) -> frozenset:
    """
    The response headers a route does not pass on (see
    L{client_response_headers}): the hop-by-hop ones, and the backend's
    banners unless it keeps them.  One of two sets made once, so that
    dropping banners costs the same membership test as before.
    """
    return HOP_BY_HOP if pass_banners else _HOP_BY_HOP_AND_BANNERS


#: Request headers the proxy writes itself, so the client's copies are
#: dropped (or merged, for trusted peers) instead of being passed along.
SET_BY_PROXY = frozenset(
    [
        b"content-length",
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"forwarded",
        b"x-request-id",
        b"via",
    ]
)

_REQUEST_SKIPPED = HOP_BY_HOP | SET_BY_PROXY


def connection_tokens(values: Optional[Iterable[bytes]]) -> frozenset:
    """
    The lower-cased option names listed in Connection header values; each
    names a further hop-by-hop header (RFC 9110 section 7.6.1).
    """
    if not values:
        return frozenset()
    return frozenset(
        token.strip().lower() for value in values for token in value.split(b",")
    )


def remove_client_copies(headers, name: bytes) -> None:
    """
    Remove the client's copies of a request field that the proxy is about
    to write itself for the backend (an identity a filter vouches for,
    such as C{X-User}), wherever a client could hide one:

      - under its name;
      - under a spelling with C{_} for C{-} (C{X_User}), which a backend
        that maps C{-} to C{_} (CGI, WSGI, PHP, Rack: C{HTTP_X_USER})
        reads as the same field;
      - in the Connection field, whose options name fields the proxy
        drops on the way as hop-by-hop (RFC 9110 section 7.6.1): the
        client's C{Connection: X-User} would have the proxy drop its own
        value.

    @param headers: the request's L{twisted.web.http_headers.Headers}.
    """
    folded = folded_name(name)
    for raw, _ in list(headers.getAllRawHeaders()):
        if folded_name(raw) == folded:
            headers.removeHeader(raw)
    connection = headers.getRawHeaders(b"connection")
    if connection:
        options = [
            token.strip()
            for value in connection
            for token in value.split(b",")
            if token.strip()
        ]
        kept = [token for token in options if folded_name(token) != folded]
        if len(kept) != len(options):
            if kept:
                headers.setRawHeaders(b"connection", [b", ".join(kept)])
            else:
                headers.removeHeader(b"connection")


def folded_name(name: bytes) -> bytes:
    """
    A field name as a backend that maps C{_} to C{-} and ignores case
    reads it.
    """
    return name.lower().replace(b"_", b"-")


def requested_upgrade(method: bytes, version: bytes, headers: List[Header]) -> Optional[bytes]:
    """
    The protocol a request asks to switch to (its Upgrade header, such as
    C{b"websocket"}), when it asks properly: an HTTP/1.1 GET whose
    Connection header lists C{upgrade} (RFC 9110 section 7.8).  L{None}
    otherwise.

    C{h2c} (RFC 7540 section 3.2) is never one: it asks for HTTP/2 on the
    hop between the client and the proxy, which the proxy answers itself
    (see L{txrevproxy.server.http2}) or ignores, answering in HTTP/1.1; a
    backend that accepted it would have its HTTP/2 spliced to the client as
    if it were a WebSocket.
    """
    if method != b"GET" or version != b"HTTP/1.1":
        return None
    upgrade = None
    connection = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"upgrade":
            upgrade = value
        elif lname == b"connection":
            connection.append(value)
    if (
        upgrade
        and upgrade.strip().lower() != b"h2c"
        and b"upgrade" in connection_tokens(connection)
    ):
        return upgrade
    return None


def upstream_request_headers(
    headers: List[Header],
    *,
    host: bytes,
    client_host: bytes,
    client_ip: bytes,
    trusted: bool,
    scheme: bytes,
    via: bytes,
    request_id: bytes,
    body_framing: Optional[bytes],
    upgrade: Optional[bytes] = None,
    port: Optional[bytes] = None,
    prefix: Optional[bytes] = None,
    forwarded: bool = False,
) -> List[Header]:
    """
    The header list to send to a backend for a client request.

    @param headers: the client's request headers, in order.
    @param host: the Host value to send (the client's, or the backend's
        authority when the route does not preserve the host).
    @param client_host: the client's Host, sent as X-Forwarded-Host.
    @param client_ip: the peer address of the client connection.
    @param trusted: whether that peer is a trusted proxy, whose
        X-Forwarded-* and X-Request-ID headers are kept and extended
        rather than replaced.
    @param scheme: C{b"http"} or C{b"https"}, the client connection's.
    @param via: this hop's Via entry, such as C{b"1.1 txrevproxy"}.
    @param request_id: the request ID sent to the backend.
    @param body_framing: C{b"chunked"}, a decimal Content-Length, or
        L{None} for a request without a body.
    @param upgrade: the protocol the client asks to switch to (see
        L{requested_upgrade}); then Upgrade and C{Connection: Upgrade} are
        passed on, the one case where those hop-by-hop headers cross.
    @param port: the port the client connected to, sent as
        X-Forwarded-Port (L{None}: not a TCP connection, none is sent).
    @param prefix: the path prefix the route stripped, sent as
        X-Forwarded-Prefix after a trusted proxy's own, or L{None}.
    @param forwarded: append this hop's element to Forwarded (C{[server]
        forwarded = "add"}, see L{txrevproxy.http.forwarded}); otherwise a
        trusted proxy's Forwarded passes unchanged and nothing is added.
        An untrusted peer's Forwarded is dropped either way.
    """
    # One pass: copy what crosses, and collect what the proxy rewrites.
    out = [(b"Host", host)]
    seen: dict = {}
    for name, value in headers:
        lname = name.lower()
        if lname in _REQUEST_SKIPPED:
            prior = seen.get(lname)
            seen[lname] = value if prior is None else prior + b", " + value
            continue
        out.append((name, value))
    if b"connection" in seen:
        dropped = connection_tokens([seen[b"connection"]])
        out[1:] = [pair for pair in out[1:] if pair[0].lower() not in dropped]

    forwarded_for = client_ip
    proto = scheme
    forwarded_host = client_host
    prior_forwarded = None
    if trusted:
        prior_for = seen.get(b"x-forwarded-for")
        if prior_for:
            forwarded_for = prior_for + b", " + client_ip
        proto = seen.get(b"x-forwarded-proto") or scheme
        forwarded_host = seen.get(b"x-forwarded-host") or client_host
        port = seen.get(b"x-forwarded-port") or port
        prior_prefix = seen.get(b"x-forwarded-prefix")
        if prior_prefix:
            prefix = prior_prefix.rstrip(b"/") + prefix if prefix else prior_prefix
        prior_forwarded = seen.get(b"forwarded")
    prior_via = seen.get(b"via")
    out.append((b"X-Forwarded-For", forwarded_for))
    out.append((b"X-Forwarded-Proto", proto))
    out.append((b"X-Forwarded-Host", forwarded_host))
    if port is not None:
        out.append((b"X-Forwarded-Port", port))
    if prefix is not None:
        out.append((b"X-Forwarded-Prefix", prefix))
    if forwarded:
        out.append(
            (
                b"Forwarded",
                extend_forwarded(
                    prior_forwarded, hop_element(client_ip, scheme, client_host)
                ),
            )
        )
    elif prior_forwarded is not None:
        out.append((b"Forwarded", prior_forwarded))
    out.append((b"Via", prior_via + b", " + via if prior_via else via))
    out.append((b"X-Request-ID", request_id))
    if upgrade is not None:
        out.append((b"Connection", b"Upgrade"))
        out.append((b"Upgrade", upgrade))
    if body_framing == b"chunked":
        out.append((b"Transfer-Encoding", b"chunked"))
    elif body_framing is not None:
        out.append((b"Content-Length", body_framing))
    return out


def with_client_subject(
    headers: List[Header], name: bytes, subject: Optional[bytes]
) -> List[Header]:
    """
    The headers with C{name} carrying the verified client certificate
    subject: any copy the client sent is dropped (it would be a forgery),
    under the name or a spelling with C{_} (see L{remove_client_copies}),
    and the header is added only when the client presented a certificate.
    """
    folded = folded_name(name)
    out = [pair for pair in headers if folded_name(pair[0]) != folded]
    if subject is not None:
        out.append((name, subject))
    return out


#: A field line without its CRLF, from a C{(name, value)} pair.
_field_line = b": ".join


def serialize_head(start_line: bytes, headers: Iterable[Header]) -> bytes:
    """
    The bytes of an HTTP/1.1 message head: its start line, its fields in
    their order, and the empty line.

    Each line is made by C{map} over a built-in, without a Python loop: a
    head is serialized for every request and every response.
    """
    return b"\r\n".join([start_line, *map(_field_line, headers), b"", b""])


#: The fields the proxy writes on its own answers whose spelling Twisted's
#: L{Headers} would change (it title-cases each word: C{X-Request-Id},
#: C{Ratelimit-Limit}): one spelling of each name, whichever path an
#: answer takes.
_SPELLINGS = {
    name.lower(): name
    for name in (
        b"X-Request-ID",
        b"RateLimit-Limit",
        b"RateLimit-Policy",
        b"RateLimit-Remaining",
        b"RateLimit-Reset",
    )
}


def serialize_answer_head(version: bytes, code: bytes, reason: bytes, headers) -> bytes:
    """
    The bytes of the head of an answer written through Twisted's
    L{twisted.web.http_headers.Headers} (C{headers}), with the proxy's
    spelling of the names it changes.
    """
    spellings = _SPELLINGS
    return serialize_head(
        b"%s %s %s" % (version, code, reason),
        (
            (spellings.get(name.lower(), name), value)
            for name, values in headers.getAllRawHeaders()
            for value in values
        ),
    )


def serialize_request_head(
    method: bytes, target: bytes, headers: List[Header]
) -> bytes:
    """
    The bytes of an HTTP/1.1 request head, ready for the backend connection.
    """
    return serialize_head(b" ".join((method, target, b"HTTP/1.1")), headers)


def upgrade_response_headers(headers: List[Header]) -> List[Header]:
    """
    The headers of a 101 answer that the client must see although they are
    hop-by-hop: the protocol switched to, and C{Connection: Upgrade}.
    """
    out = [(b"Connection", b"Upgrade")]
    out.extend((b"Upgrade", value) for name, value in headers if name.lower() == b"upgrade")
    return out


def client_response_headers(
    headers: List[Header], keep_content_length: bool, skipped: frozenset = HOP_BY_HOP
) -> List[Header]:
    """
    The backend's response headers that are passed on to the client.

    @param keep_content_length: whether the backend's Content-Length still
        describes the body the client gets (it does when the backend framed
        the body by length, or for HEAD and 304 answers); otherwise the
        client side frames the body itself.
    @param skipped: the lower-cased names not passed on: the route's
        L{response_skipped}; the hop-by-hop ones at least.
    """
    out = []
    connection = []
    for name, value in headers:
        lname = name.lower()
        if lname in skipped:
            # A Connection value that is one option skipped anyway
            # (keep-alive, close: what most backends send) names nothing
            # more to drop.
            if lname == b"connection" and value.lower() not in skipped:
                connection.append(value)
            continue
        if lname == b"content-length" and not keep_content_length:
            continue
        out.append((name, value))
    if connection:
        dropped = connection_tokens(connection) - skipped
        if dropped:
            out = [pair for pair in out if pair[0].lower() not in dropped]
    return out


_date_cache: List = [None, b""]


def http_date(seconds: float) -> bytes:
    """
    The IMF-fixdate of a time, for Date headers (RFC 9110 section 5.6.7).

    Formatted once per second: every response needs one, and the same
    second serves thousands of them.
    """
    whole = int(seconds)
    if _date_cache[0] != whole:
        _date_cache[1] = datetimeToString(whole)
        _date_cache[0] = whole
    return _date_cache[1]


def cookie_value(values: Optional[Iterable[bytes]], name: bytes) -> Optional[bytes]:
    """
    The value of the cookie C{name} in a request's Cookie header values
    (C{a=1; b=2}, RFC 6265 section 4.2), or L{None}.
    """
    for value in values or ():
        for pair in value.split(b";"):
            key, equals, found = pair.strip().partition(b"=")
            if equals and key == name:
                return found.strip(b'"')
    return None
