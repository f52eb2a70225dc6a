"""
C{type = "cors"}: Cross-Origin Resource Sharing, answered by the proxy as
the Fetch standard (section 3.2) describes it.

A preflight (C{OPTIONS} with C{Origin} and C{Access-Control-Request-Method})
never reaches the backend: from an allowed origin asking for an allowed
method and allowed headers it gets a 204 with the C{Access-Control-Allow-*}
fields; otherwise a 403 without them, as Spring's C{CorsFilter} does, so
that a refused preflight shows in the access log instead of failing only
in the browser.  An actual request always goes on to the backend; its
response gets C{Access-Control-Allow-Origin} (and C{-Credentials},
C{-Expose-Headers}) when its origin is allowed, and every
C{Access-Control-*} field the backend sent is replaced, so that the
proxy's policy is the only one.  C{Vary: Origin} is merged into every
response whose fields depend on the origin, so that a shared cache
downstream keeps one copy per origin; the proxy's own cache stores the
backend's response and this filter runs again on each hit, so two
origins get their own fields from one stored response.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

import attr
from zope.interface import implementer

from ..config.schema import Field, Invalid, Problem, Table, array_of, expected
from ..config.values import boolean, duration, header_name, method_name
from ..interfaces import Answer, Header, IFilter

#: The methods a preflight needs no permission for (Fetch, "CORS-safelisted
#: method").
_SAFELISTED_METHODS = frozenset([b"GET", b"HEAD", b"POST"])

_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<wild>\*\.)?(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?\Z"
)


@attr.s(frozen=True, auto_attribs=True)
class OriginPattern:
    """
    One entry of C{allow_origins}: an exact origin, or C{scheme://*.domain}
    for every subdomain of C{domain} (at any depth, not C{domain} itself).

    @ivar scheme: the scheme, lower-case.
    @ivar host: the host (for a wildcard, the domain after C{*.}),
        lower-case.
    @ivar port: the port as written, or L{None} for the scheme's default
        (an C{Origin} field leaves a default port out).
    @ivar wildcard: whether subdomains of C{host} match.
    """

    scheme: str
    host: str
    port: Optional[str]
    wildcard: bool

    def matches(self, origin: str) -> bool:
        found = _ORIGIN.match(origin)
        if found is None or found.group("wild"):
            return False
        if found.group("scheme") != self.scheme or found.group("port") != self.port:
            return False
        host = found.group("host")
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def origin_pattern(value: Any) -> Optional[OriginPattern]:
    """
    Convert an entry of C{allow_origins}; C{"*"} (any origin) is L{None}.
    """
    if value == "*":
        return None
    if not isinstance(value, str):
        raise expected('an origin such as "https://app.example.com"', value)
    found = _ORIGIN.match(value.lower())
    if found is None:
        raise expected(
            'an origin such as "https://app.example.com" or '
            '"https://*.example.com" (scheme, host and optional port, no path)',
            value,
        )
    port = found.group("port")
    if port is not None and (int(port) > 65535 or port.startswith("0")):
        raise Invalid("port out of range in %r" % (value,))
    return OriginPattern(
        found.group("scheme"), found.group("host"), port, bool(found.group("wild"))
    )


def _header_or_any(value: Any) -> str:
    return "*" if value == "*" else header_name(value)


def _method_or_any(value: Any) -> str:
    return "*" if value == "*" else method_name(value)


@attr.s(frozen=True, auto_attribs=True)
class Options:
    allow_origins: Tuple[Optional[OriginPattern], ...]
    allow_methods: Tuple[str, ...]
    allow_headers: Tuple[str, ...]
    expose_headers: Tuple[str, ...]
    allow_credentials: bool
    max_age: Optional[float]
    allow_private_network: bool


def _optional_duration(value: Any) -> Optional[float]:
    return None if value is False else duration(value)


def _credentials_need_origins(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["allow_credentials"] and None in arguments["allow_origins"]:
        yield (
            ".allow_origins",
            'cannot hold "*" with allow_credentials = true (browsers refuse a '
            "credentialed response to any origin); list the origins",
        )


OPTIONS = Table(
    Options,
    {
        "allow_origins": Field(
            array_of(
                origin_pattern,
                min_items=1,
                what='an array of origins such as ["https://app.example.com"]',
            )
        ),
        "allow_methods": Field(
            array_of(_method_or_any, what='an array of methods such as ["GET", "PUT"]'),
            default=["GET", "HEAD", "POST"],
        ),
        "allow_headers": Field(
            array_of(_header_or_any, what='an array of header names, or ["*"]'),
            default=[],
        ),
        "expose_headers": Field(
            array_of(header_name, what='an array of header names such as ["X-Total"]'),
            default=[],
        ),
        "allow_credentials": Field(boolean, default=False),
        "max_age": Field(_optional_duration, default=False),
        "allow_private_network": Field(boolean, default=False),
    },
    checks=(_credentials_need_origins,),
)


def merge_vary(headers: List[Header], name: bytes) -> None:
    """
    Make the C{Vary} fields of C{headers} name C{name}: added to the first
    C{Vary} field, or as a new one, unless already there or C{Vary: *}.
    """
    wanted = name.lower()
    first = None
    for index, (field, value) in enumerate(headers):
        if field.lower() != b"vary":
            continue
        tokens = [token.strip().lower() for token in value.split(b",")]
        if wanted in tokens or b"*" in tokens:
            return
        if first is None:
            first = index
    if first is None:
        headers.append((b"Vary", name))
    else:
        field, value = headers[first]
        headers[first] = (field, value + b", " + name if value.strip() else name)


@implementer(IFilter)
class CORS:
    """
    The filter of a C{type = "cors"} table; see the module's docstring.
    """

    def __init__(self, options: Options) -> None:
        patterns = options.allow_origins
        self._any_origin = None in patterns
        self._patterns = tuple(pattern for pattern in patterns if pattern is not None)
        self._credentials = options.allow_credentials
        methods = options.allow_methods
        self._any_method = "*" in methods
        self._methods = frozenset(m.encode("ascii") for m in methods) | _SAFELISTED_METHODS
        self._methods_field = ", ".join(m for m in methods if m != "*").encode("ascii")
        headers = options.allow_headers
        self._any_header = "*" in headers
        self._headers = frozenset(h.lower().encode("ascii") for h in headers if h != "*")
        self._expose = ", ".join(options.expose_headers).encode("ascii")
        self._max_age = (
            None if options.max_age is None else b"%d" % (int(options.max_age),)
        )
        self._private_network = options.allow_private_network
        # With any origin and no credentials every response says "*": it
        # does not depend on the Origin field.
        self._echo = not (self._any_origin and not self._credentials)

    def allowed_origin(self, origin: bytes) -> bool:
        """
        Whether C{origin} (an C{Origin} field's value) may read responses.
        """
        if self._any_origin:
            return True
        try:
            text = origin.decode("ascii").lower()
        except UnicodeDecodeError:
            return False
        return any(pattern.matches(text) for pattern in self._patterns)

    def _origin_fields(self, origin: bytes) -> List[Header]:
        fields = [(b"Access-Control-Allow-Origin", origin if self._echo else b"*")]
        if self._credentials:
            fields.append((b"Access-Control-Allow-Credentials", b"true"))
        return fields

    def preflight(
        self, origin: bytes, method: bytes, requested: Optional[bytes], private: bool
    ) -> Answer:
        """
        The answer to a preflight from C{origin} for C{method} with the
        request fields named in C{requested} (an
        C{Access-Control-Request-Headers} value, or L{None}).
        """
        names = [
            name.strip().lower() for name in (requested or b"").split(b",") if name.strip()
        ]
        if not (
            self.allowed_origin(origin)
            and (self._any_method or method in self._methods)
            and (self._any_header or all(name in self._headers for name in names))
        ):
            return Answer(403, self._vary())
        fields = self._origin_fields(origin)
        methods = method if self._any_method else self._methods_field
        if methods:
            fields.append((b"Access-Control-Allow-Methods", methods))
        if names:
            fields.append((b"Access-Control-Allow-Headers", b", ".join(names)))
        if self._max_age is not None:
            fields.append((b"Access-Control-Max-Age", self._max_age))
        if private and self._private_network:
            fields.append((b"Access-Control-Allow-Private-Network", b"true"))
        fields.extend(self._vary())
        return Answer(204, tuple(fields))

    def _vary(self) -> Tuple[Header, ...]:
        return ((b"Vary", b"Origin"),) if self._echo else ()

    def request(self, request) -> Optional[Answer]:
        fields = request.requestHeaders
        if request.method != b"OPTIONS" or not fields.hasHeader(b"Origin"):
            return None
        method = fields.getRawHeaders(b"Access-Control-Request-Method")
        if not method:
            return None
        requested = fields.getRawHeaders(b"Access-Control-Request-Headers")
        private = fields.getRawHeaders(b"Access-Control-Request-Private-Network")
        return self.preflight(
            fields.getRawHeaders(b"Origin")[0],
            method[0].strip(),
            b",".join(requested) if requested else None,
            private == [b"true"],
        )

    def response(self, request, status, headers) -> None:
        if any(name.lower().startswith(b"access-control-") for name, _ in headers):
            headers[:] = [
                field
                for field in headers
                if not field[0].lower().startswith(b"access-control-")
            ]
        origin = request.requestHeaders.getRawHeaders(b"Origin")
        if origin and self.allowed_origin(origin[0]):
            headers.extend(self._origin_fields(origin[0]))
            if self._expose:
                headers.append((b"Access-Control-Expose-Headers", self._expose))
        if self._echo:
            merge_vary(headers, b"Origin")
        return None


def configure(options, context) -> CORS:
    return CORS(OPTIONS(options))
