"""
What a route changes in the responses it passes back, so that a backend
behind a prefix or another host name names itself as the client sees it:
the URL of C{Location}, C{Content-Location} and C{Refresh} (nginx's
C{proxy_redirect}), and the C{Domain} and C{Path} of C{Set-Cookie}
(C{proxy_cookie_domain}, C{proxy_cookie_path}).

Everything is worked out once per route when the configuration is loaded;
a route that rewrites nothing has no L{ResponseRewrite} at all, so its
responses pay nothing for this.  The rules are described in
C{docs/routing.rst}, "Rewriting responses".
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..config.model import Route, Upstream
from ..http.target import normalize_path
from .rewrite import PathRewrite

Header = Tuple[bytes, bytes]

#: The fields whose URL is rewritten.
_URL_FIELDS = frozenset([b"location", b"content-location", b"refresh"])

#: The scheme and authority at the start of an absolute URL or of a
#: network-path reference (RFC 3986 section 4.2).
_ORIGIN = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)")

#: An absolute URI without an authority (C{mailto:}, C{urn:}): never the
#: backend's own.
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:")

#: C{Refresh: 5; url=/next} and its variants, as browsers read it (HTML's
#: "shared declarative refresh steps"): the URL is group 1.
_REFRESH = re.compile(
    rb"\s*[0-9.]+\s*[;,]?\s*(?:url\s*=\s*)?['\"]?([^'\"\s]+)", re.IGNORECASE
)

#: The end of the path of a reference: its query or fragment.
_TAIL = re.compile(rb"[?#]")


def _base(prefix: str) -> bytes:
    """
    A canonical path prefix (C{"/"}, C{"/app"}) as the bytes path pieces
    are put after: empty for the root.
    """
    return b"" if prefix == "/" else prefix.encode("ascii")


def replace_prefix(path: bytes, prefix: bytes, replacement: bytes) -> Optional[bytes]:
    """
    C{path} with its leading C{prefix} replaced, matching whole segments
    (C{/app} is under C{/app} and C{/app/x}, not under C{/application}).

    @param prefix: a L{_base}: C{b""} stands for the root, under which
        every path is.
    @param replacement: a L{_base} likewise.
    @return: the new path, or L{None} when C{path} is not under C{prefix}.
    """
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :]
    if rest and rest[:1] != b"/":
        return None
    return replacement + rest or b"/"


class PathMap:
    """
    How the paths of a route's backend map back to the client's: the
    inverse of a route's C{strip_prefix} and C{add_prefix}.

    A path can be under both prefixes (a route at C{/app} that strips it:
    the backend's prefix is C{/}).  It is then taken to be in the view of
    the longer one, so a backend that knows its public prefix already
    (from C{X-Forwarded-Prefix}) and redirects to C{/app/login} is left
    alone.

    @ivar client: the route's prefix as the client sees it, a L{_base}.
    @ivar backend: the same prefix as the backend sees it, a L{_base}.
    """

    def __init__(self, client: bytes, backend: bytes) -> None:
        self.client = client
        self.backend = backend

    @classmethod
    def for_route(cls, route: Route) -> Optional["PathMap"]:
        """
        The map of a route, or L{None} when it leaves paths as they are or
        rewrites them by a regular expression (which has no inverse).
        """
        if route.rewrite is not None:
            return None
        added = route.add_prefix or "/"
        client = route.path if route.strip_prefix else "/"
        if client == added:
            return None
        return cls(_base(client), _base(added))

    def to_client(self, path: bytes) -> Optional[bytes]:
        """
        The client's path for a path in the backend's view, or L{None}
        when C{path} is not in the backend's view.
        """
        client = self.client
        if len(client) > len(self.backend) and replace_prefix(path, client, client):
            return None
        return replace_prefix(path, self.backend, client)


class ResponseRewrite:
    """
    A route's rewriting of the response fields that name URLs and of the
    attributes of its cookies, applied to a list of C{(name, value)}
    pairs.
    """

    def __init__(
        self,
        rules: Tuple[Tuple[bytes, int, bytes], ...],
        default: bool,
        authorities: FrozenSet[bytes],
        client_host: bool,
        path_map: Optional[PathMap],
        path_rewrite: Optional[PathRewrite],
        domains: Dict[bytes, bytes],
        paths: Tuple[Tuple[bytes, bytes], ...],
    ) -> None:
        """
        @param rules: the explicit C{redirect_rewrite} rules, each
            C{(from, length of its lower-cased origin, to)}.
        @param default: whether the default rules apply after them.
        @param authorities: the lower-case C{host[:port]} forms that name
            the backend.
        @param client_host: whether the Host the client sent names the
            backend too (the route preserves Host).
        @param path_map: the route's L{PathMap}, if any.
        @param path_rewrite: the route's L{PathRewrite}, which gives the
            path a relative reference is resolved against.
        @param domains: Set-Cookie Domain (lower-case, no leading dot) to
            its replacement; C{b""} drops the attribute.
        @param paths: Set-Cookie Path prefixes and their replacements, as
            L{_base}s, longest first.
        """
        self._rules = rules
        self._default = default
        self._authorities = authorities
        self._client_host = client_host
        self._path_map = path_map
        self._path_rewrite = path_rewrite
        self._domains = domains
        self._paths = paths
        self._urls = bool(rules) or default
        self._cookies = bool(domains or paths)

    @classmethod
    def for_route(
        cls,
        route: Route,
        upstream: Upstream,
        preserve_host: bool,
        path_rewrite: Optional[PathRewrite],
    ) -> Optional["ResponseRewrite"]:
        """
        The rewrite of a route's responses, or L{None} when it changes
        nothing: the default rules apply when the route changes the path
        it forwards or does not preserve Host, unless C{redirect_rewrite}
        says otherwise.
        """
        setting = route.redirect_rewrite
        if setting is None:
            default, rules = path_rewrite is not None or not preserve_host, ()
        else:
            default, rules = setting.default, setting.rules
        if not (default or rules or route.cookie_domain or route.cookie_path):
            return None
        return cls(
            tuple(_rule(rule.source, rule.to) for rule in rules),
            default,
            _authorities(route, upstream),
            preserve_host,
            PathMap.for_route(route),
            path_rewrite,
            {
                domain.encode("ascii"): replacement.encode("ascii")
                for domain, replacement in route.cookie_domain
            },
            tuple(
                (_base(prefix), _base(replacement))
                for prefix, replacement in route.cookie_path
            ),
        )

    def apply(self, headers: List[Header], request) -> List[Header]:
        """
        The headers with the route's rewriting done, for C{request} (whose
        paths a relative reference is resolved against).
        """
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower in _URL_FIELDS:
                if self._urls:
                    if lower == b"refresh":
                        value = self._refresh(value, request)
                    else:
                        value = self.url(value, request)
            elif lower == b"set-cookie" and self._cookies:
                value = self.cookie(value)
            out.append((name, value))
        return out

    # URLs -----------------------------------------------------------------

    def url(self, value: bytes, request) -> bytes:
        """
        The URL a C{Location} or C{Content-Location} of C{value} gets: the
        first explicit rule that matches, else the default rules, if on.
        """
        for source, origin, to in self._rules:
            if (
                value[:origin].lower() == source[:origin]
                and value.startswith(source[origin:], origin)
            ):
                return to + value[len(source) :]
        if self._default:
            return self._default_url(value, request)
        return value

    def _refresh(self, value: bytes, request) -> bytes:
        match = _REFRESH.match(value)
        if match is None:
            return value
        start, end = match.span(1)
        return value[:start] + self.url(value[start:end], request) + value[end:]

    def _default_url(self, value: bytes, request) -> bytes:
        origin = _ORIGIN.match(value)
        if origin is not None:
            scheme = origin.group(1)
            if scheme is not None and scheme.lower() not in (b"http:", b"https:"):
                return value
            if not self._names_backend(origin.group(2).lower(), request):
                return value
            # The client's own scheme and host stand in for the backend's.
            rest = value[origin.end() :]
            return self._client_reference(rest if rest[:1] == b"/" else b"/" + rest)
        if value[:1] == b"/":
            return self._client_reference(value)
        if _SCHEME.match(value) is None:
            return self._relative(value, request)
        return value

    def _names_backend(self, authority: bytes, request) -> bool:
        if authority in self._authorities:
            return True
        if self._client_host:
            sent = request.requestHeaders.getRawHeaders(b"host", [b""])[0]
            return authority == sent.lower()
        return False

    def _client_reference(self, reference: bytes) -> bytes:
        """
        A path-absolute reference in the client's view.
        """
        path_map = self._path_map
        if path_map is None:
            return reference
        tail = _TAIL.search(reference)
        split = len(reference) if tail is None else tail.start()
        path = path_map.to_client(reference[:split])
        return reference if path is None else path + reference[split:]

    def _relative(self, reference: bytes, request) -> bytes:
        """
        A relative-path reference (C{login}, C{../login}): the backend
        means it relative to the path it was sent, and the client will
        resolve it against the path it asked for (RFC 9110 section
        10.2.2, RFC 3986 section 5.2).  It is left as it is when both give
        the same path; otherwise (it climbs out of the route's prefix) it
        becomes the client's path-absolute reference.
        """
        path_map = self._path_map
        tail = _TAIL.search(reference)
        split = len(reference) if tail is None else tail.start()
        if path_map is None or split == 0:
            # Without a path change both resolve alike; an empty path (a
            # query or a fragment alone) names the same resource.
            return reference
        relative = reference[:split]
        target = self._path_rewrite.target(request).split(b"?", 1)[0]
        resolved = normalize_path(target[: target.rfind(b"/") + 1] + relative)
        if resolved is None:
            return reference
        path = path_map.to_client(resolved)
        if path is None:
            return reference
        client = request.path
        if normalize_path(client[: client.rfind(b"/") + 1] + relative) == path:
            return reference
        return path + reference[split:]

    # Cookies --------------------------------------------------------------

    def cookie(self, value: bytes) -> bytes:
        """
        A C{Set-Cookie} value with its Domain and Path rewritten by the
        route's rules; every other byte is kept (RFC 6265 section 4.1.1:
        attributes are separated by C{;}, which no value holds).
        """
        parts: List[Optional[bytes]] = list(value.split(b";"))
        for index in range(1, len(parts)):
            part = parts[index]
            name, equals, attribute = part.partition(b"=")
            key = name.strip().lower()
            if key == b"domain":
                if not self._domains:
                    continue
                new = self._domains.get(attribute.strip().lstrip(b".").lower())
                if new == b"":
                    parts[index] = None
                    continue
            elif key == b"path":
                new = self._cookie_path(attribute.strip())
            else:
                continue
            if new is not None:
                spaces = part[: len(part) - len(part.lstrip())]
                parts[index] = spaces + name.strip() + b"=" + new
        return b";".join(part for part in parts if part is not None)

    def _cookie_path(self, path: bytes) -> Optional[bytes]:
        for prefix, replacement in self._paths:
            new = replace_prefix(path, prefix, replacement)
            if new is not None:
                return new
        return None

    # For txrevproxy route -----------------------------------------------

    def describe(self) -> List[str]:
        """
        The rules in effect, one line each, for C{txrevproxy route}.
        """
        lines = [
            "%s -> %s" % (source.decode("ascii"), to.decode("ascii"))
            for source, _, to in self._rules
        ]
        if self._default:
            names = ", ".join(sorted(a.decode("ascii") for a in self._authorities))
            if self._client_host:
                names += " or the Host sent"
            lines.append(
                "default: http(s)://%s -> the client's own scheme and host" % (names,)
            )
            path_map = self._path_map
            if path_map is not None:
                lines.append(
                    "default: paths under %s -> under %s (relative ones too)"
                    % (
                        (path_map.backend or b"/").decode("ascii"),
                        (path_map.client or b"/").decode("ascii"),
                    )
                )
        fields = ["Location, Content-Location, Refresh: " + line for line in lines]
        fields.extend(
            "Set-Cookie Domain: %s -> %s"
            % (domain.decode("ascii"), replacement.decode("ascii") or "(removed)")
            for domain, replacement in self._domains.items()
        )
        fields.extend(
            "Set-Cookie Path: %s -> %s"
            % ((prefix or b"/").decode("ascii"), (replacement or b"/").decode("ascii"))
            for prefix, replacement in self._paths
        )
        return fields


def _rule(source: str, to: str) -> Tuple[bytes, int, bytes]:
    """
    An explicit rule: its C{from} with the scheme and host lower-cased
    (they match whatever their case), that part's length, and its C{to}.
    """
    raw = source.encode("ascii")
    origin = _ORIGIN.match(raw)
    length = 0 if origin is None else origin.end()
    return raw[:length].lower() + raw[length:], length, to.encode("ascii")


def _authorities(route: Route, upstream: Upstream) -> FrozenSet[bytes]:
    """
    The C{host[:port]} forms a backend of C{upstream} may call itself by
    on C{route}: each server's, with and without its port when that is
    the default, and a fixed Host the route sends instead.
    """
    names = set()
    for server in upstream.servers:
        names.add(server.authority.lower().encode("idna"))
        host = "[%s]" % (server.host,) if ":" in server.host else server.host
        names.add(("%s:%d" % (host, server.port)).lower().encode("idna"))
    rules = route.request_headers
    for header, template in () if rules is None else rules.set:
        if header.lower() == "host" and all(isinstance(p, bytes) for p in template.parts):
            names.add(b"".join(template.parts).lower())
    return frozenset(names)
