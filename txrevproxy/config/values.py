"""
Converters of single configuration values: booleans, counts, durations,
sizes, networks, endpoints, backend URLs, host names and path prefixes.

Each takes a value as parsed from TOML and returns it converted, or raises
L{Invalid} with a sentence that makes sense after the key path
(C{upstreams.app.connect_timeout: expected a duration such as "5s", got 5}).
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Callable, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet.endpoints import serverFromString

from ..http.target import decode_unreserved
from ..net.endpoint_port import endpoint_port
from .model import IPNetwork
from .schema import Invalid, array_of, describe, expected
from .units import parse_duration, parse_size


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise expected("true or false", value)
    return value


_HSTS_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?\d+\"?\s*(?:;|$)", re.IGNORECASE)


def hsts_policy(value: Any) -> str:
    """
    A Strict-Transport-Security value: RFC 6797 requires its max-age
    directive.
    """
    if not isinstance(value, str) or not value.strip():
        raise expected('a policy such as "max-age=31536000; includeSubDomains"', value)
    if not _HSTS_MAX_AGE.search(value) or any(c in value for c in "\r\n\x00"):
        raise Invalid(
            'must have a max-age directive, such as "max-age=31536000", got %s'
            % (describe(value),)
        )
    return value.strip()


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def header_name(value: Any) -> str:
    """
    An HTTP header field name (an RFC 9110 token).
    """
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise expected('a header name such as "X-Client-Subject"', value)
    return value


def method_name(value: Any) -> str:
    """
    A request method: an RFC 9110 token, upper-cased.

    RFC 9110 section 9.1 makes methods case-sensitive, and every method
    registered with IANA is upper-case, so C{"get"} in a file can only
    mean C{GET}: every name is stored upper-case (extension methods such
    as C{"purge"} too), and requests are compared with it exactly, as
    RFC 9110 says (a request for C{get} is not a C{GET}).
    """
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise expected('a method such as "GET"', value)
    return value.upper()


def method_names(min_items: int = 0) -> Callable[[Any], Tuple[str, ...]]:
    """
    The converter of every key that lists request methods
    (C{[server] allowed_methods}, a route's C{methods}): an array of
    L{method_name}s, stored upper-case without duplicates.

    @param min_items: the fewest methods allowed.
    """
    items = array_of(
        method_name, min_items=min_items, what='an array of methods such as ["GET", "HEAD"]'
    )
    return lambda value: tuple(dict.fromkeys(items(value)))


def integer(minimum: int = 0, maximum: Optional[int] = None) -> Callable[[Any], int]:
    """
    A converter of a TOML integer from C{minimum} to C{maximum}.
    """

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise expected("an integer", value)
        if value < minimum:
            raise Invalid("must be at least %d, got %d" % (minimum, value))
        if maximum is not None and value > maximum:
            raise Invalid("must be at most %d, got %d" % (maximum, value))
        return value

    return convert


#: A percentage, such as C{max_ejection_percent = 50}.
percent = integer(minimum=0, maximum=100)


def cookie_name(value: Any) -> str:
    """
    A cookie name (an RFC 6265 token).
    """
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise expected('a cookie name such as "backend"', value)
    return value


_HASH_KEYS = 'client_ip, path, "header:NAME" or "cookie:NAME"'


def hash_key(value: Any) -> str:
    """
    What the C{hash} policy hashes: C{"client_ip"}, C{"path"},
    C{"header:NAME"} (header names are kept lower-case) or C{"cookie:NAME"}.
    """
    if not isinstance(value, str):
        raise expected(_HASH_KEYS, value)
    if value in ("client_ip", "path"):
        return value
    kind, colon, key = value.partition(":")
    if kind == "header" and _TOKEN.match(key):
        return "header:" + key.lower()
    if kind == "cookie" and _TOKEN.match(key):
        return value
    raise Invalid("expected %s, got %s" % (_HASH_KEYS, describe(value)))


_STATUS_CLASS = re.compile(r"[1-5]xx\Z")


def health_status(value: Any) -> str:
    """
    A status that passes an HTTP health check: a code from 100 to 599
    (C{204} or C{"204"}) or a class (C{"2xx"}).
    """
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        if _STATUS_CLASS.match(text):
            return text
        if text.isdigit() and 100 <= int(text) <= 599:
            return str(int(text))
    raise expected('a status code such as 200 or a class such as "2xx"', value)


health_statuses = array_of(
    health_status, min_items=1, what='an array of statuses such as ["2xx", 404]'
)


def printable(text: str) -> bool:
    """
    Whether C{text} is printable ASCII without spaces, as request targets
    and header values written by the proxy must be.
    """
    return all(" " < c < "\x7f" for c in text)


def request_target(value: Any) -> str:
    """
    An origin-form request target such as C{"/healthz?full=1"}: printable
    ASCII starting with C{/}.
    """
    if not isinstance(value, str) or not value.startswith("/") or not printable(value):
        raise expected('a path such as "/healthz" (printable ASCII, no spaces)', value)
    return value


def host_header(value: Any) -> str:
    """
    A Host header value, C{host[:port]}.
    """
    if not isinstance(value, str) or not value or not printable(value):
        raise expected('a host such as "app.internal" or "app.internal:8080"', value)
    return value


def name(value: Any) -> str:
    """
    A reference to a named table, such as a route's C{upstream}.
    """
    if not isinstance(value, str) or not value:
        raise expected("a name", value)
    return value


def one_of(*choices: str) -> Callable[[Any], str]:
    """
    A converter of a string that must be one of C{choices}.
    """
    listed = ", ".join('"%s"' % (choice,) for choice in choices)

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise expected("one of %s" % (listed,), value)
        if value not in choices:
            raise Invalid(
                "unknown value %s; expected one of %s" % (describe(value), listed)
            )
        return value

    return convert


def duration(value: Any) -> float:
    """
    A positive duration such as C{"5s"}, in seconds.  Zero is refused:
    every duration so far is a timeout, where zero makes no sense.
    """
    if not isinstance(value, str):
        raise expected('a duration such as "5s"', value)
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise Invalid("%s, got %s" % (error, describe(value)))
    if seconds <= 0:
        raise Invalid("must be longer than zero, got %s" % (describe(value),))
    return seconds


def size(value: Any) -> int:
    """
    A size in bytes: an integer, or a string such as C{"64KiB"}.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise Invalid("must not be negative, got %d" % (value,))
        return value
    if not isinstance(value, str):
        raise expected('a size such as "64KiB" or a number of bytes', value)
    try:
        return parse_size(value)
    except ValueError as error:
        raise Invalid("%s, got %s" % (error, describe(value)))


def network(value: Any) -> IPNetwork:
    """
    An IPv4 or IPv6 network in CIDR notation; a bare address is a network
    of that one address (C{/32} or C{/128}).
    """
    if not isinstance(value, str):
        raise expected('a network such as "10.0.0.0/8" or "::1"', value)
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Invalid(
            'expected a network such as "10.0.0.0/8" or "::1", got %s'
            % (describe(value),)
        )
    raise Invalid(
        '%s has host bits set; did you mean "%s"?' % (describe(value), loose)
    )


networks = array_of(network, what='an array of networks such as ["10.0.0.0/8"]')


class _ParsingOnly:
    """
    The reactor an endpoint description is parsed against: parsing only
    builds the endpoint, and nothing listens.  Not Twisted's
    C{MemoryReactor}, whose module imports C{twisted.trial} (and with it
    C{unittest}, C{doctest} and C{pdb}) into every proxy process: 2 MiB of
    memory at rest.
    """


def endpoint(value: Any) -> str:
    """
    A Twisted server endpoint description, checked by parsing it against a
    reactor that is never used (L{_ParsingOnly}): unknown types, bad
    arguments and unreadable certificate files are found.
    """
    if not isinstance(value, str):
        raise expected('a server endpoint description such as "tcp:8080"', value)
    try:
        parsed = serverFromString(_ParsingOnly(), value)
    except Exception as error:
        raise Invalid(
            "invalid server endpoint %s: %s"
            % (describe(value), str(error) or type(error).__name__)
        )
    # TCP endpoints take any integer as a port; the mistake would only show
    # when listening.
    port = endpoint_port(parsed)
    if port is not None and not 0 <= port <= 65535:
        raise Invalid(
            "invalid server endpoint %s: port %d is out of range"
            % (describe(value), port)
        )
    return value


_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")


def _dns_name(text: str) -> str:
    """
    Check a host name or IPv4 address (no port, no wildcard), and return
    its lower-case ASCII form (international names in IDNA form).

    @raise Invalid: with a sentence about C{text}.
    """
    shown = describe(text)
    if not text:
        raise Invalid("empty host name")
    if any(c.isspace() for c in text):
        raise Invalid("%s: a host name cannot contain spaces" % (shown,))
    try:
        ascii = text.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise Invalid("%s is not a valid host name" % (shown,))
    labels = ascii.split(".")
    if len(ascii) > 253 or not all(_LABEL.match(label) for label in labels):
        raise Invalid("%s is not a valid host name" % (shown,))
    return ascii


def _ipv6_literal(text: str) -> str:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise Invalid("%s is not a valid IPv6 address" % (describe(text),))


def host_name(value: Any) -> str:
    """
    One host name a route answers for: lower-cased, without a trailing
    dot, international names in IDNA (C{xn--}) form, IPv6 addresses in
    brackets; C{*.example.test} matches any one label in front of
    C{example.test}.
    """
    if not isinstance(value, str):
        raise expected("a host name", value)
    text = value.lower()
    if text.startswith("[") and text.endswith("]"):
        return "[%s]" % (_ipv6_literal(text[1:-1]),)
    if ":" in text:
        raise Invalid(
            "%s: a route's host has no port (a route matches its host on "
            "every listener)" % (describe(value),)
        )
    return _wildcard_name(value, text)


def _wildcard_name(value: str, text: str) -> str:
    """
    Check a lower-case host name that may be a wildcard (C{*.example.test})
    and may end with a dot, and return its canonical form.
    """
    if text.endswith(".") and text != ".":
        text = text[:-1]
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    if "*" in text:
        raise Invalid(
            '%s: a wildcard must be the whole left-most label, as in "*.example.test"'
            % (describe(value),)
        )
    ascii = _dns_name(text)
    return "*." + ascii if wildcard else ascii


def server_name(value: Any) -> str:
    """
    A name a certificate serves, as a client sends it through SNI:
    lower-cased, IDNA (C{xn--}) form, C{*.example.test} for a wildcard of
    one label.
    """
    if not isinstance(value, str):
        raise expected('a host name such as "example.test"', value)
    return _wildcard_name(value, value.lower())


server_names = array_of(server_name, min_items=1, what="an array of host names")


def file_path(value: Any) -> str:
    """
    A file or directory path; a relative one is taken from the directory of
    the configuration file (the loader makes it absolute).
    """
    if not isinstance(value, str) or not value:
        raise expected("a file path", value)
    return value


def tls_version(value: Any) -> str:
    """
    The lowest TLS version a listener accepts: C{"1.0"} to C{"1.3"}
    (below 1.2 only with C{preset = "old"}, which the table checks).
    """
    if value in ("1.0", "1.1", "1.2", "1.3"):
        return value
    raise expected('a TLS version, "1.2" or "1.3"', value)


_host_list = array_of(host_name, min_items=1)


def host_names(value: Any) -> Tuple[str, ...]:
    """
    A route's C{host}: one host name or an array of them, without
    duplicates.
    """
    if isinstance(value, str):
        return (host_name(value),)
    if not isinstance(value, list):
        raise expected("a host name or an array of host names", value)
    return tuple(dict.fromkeys(_host_list(value)))


def route_path(value: Any) -> str:
    """
    A path prefix (a route's C{path}, C{add_prefix}) in canonical form:
    normalised as request paths are (see L{txrevproxy.http.target}), then
    C{"/"} or segments joined by single slashes with no trailing slash
    (C{"/api/"}, C{"//api"} and C{"/%61pi"} are C{"/api"}).  Prefixes match
    whole segments, so the trailing slash carries no meaning.  Characters
    outside printable ASCII must be percent-encoded.
    """
    if not isinstance(value, str):
        raise expected('a path such as "/api"', value)
    shown = describe(value)
    if not value.startswith("/"):
        raise Invalid('a path must start with "/", got %s' % (shown,))
    if not printable(value):
        raise Invalid(
            "%s: a path cannot contain spaces, control or non-ASCII characters "
            "(percent-encode them)" % (shown,)
        )
    if "?" in value or "#" in value:
        raise Invalid("%s: a path prefix has no query or fragment" % (shown,))
    decoded = decode_unreserved(value.encode("ascii"))
    if decoded is None:
        raise Invalid("%s: a %% must start an escape such as %%2F" % (shown,))
    segments = [segment for segment in decoded.decode("ascii").split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise Invalid('%s: "." and ".." segments are not allowed' % (shown,))
    return "/" + "/".join(segments)


URL_EXAMPLE = '"http://127.0.0.1:9001"'


def backend_url(value: Any) -> Tuple[str, str, str, int]:
    """
    A backend's URL: C{http://host[:port]} or C{https://host[:port]} with
    an optional trailing slash, the host a name, an IPv4 address or a
    bracketed IPv6 address.

    @return: the URL as written, the scheme, the host (lower-case, IPv6
        without brackets) and the port, in the order of
        L{BackendServer}'s fields.
    """
    if not isinstance(value, str):
        raise expected("a URL such as %s" % (URL_EXAMPLE,), value)
    shown = describe(value)
    scheme, separator, rest = value.partition("://")
    if not separator:
        raise Invalid("expected a URL such as %s, got %s" % (URL_EXAMPLE, shown))
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise Invalid(
            "only http:// and https:// backends are supported, got %s" % (shown,)
        )
    if any(c.isspace() for c in value):
        raise Invalid("%s: a URL cannot contain spaces" % (shown,))
    if "?" in rest or "#" in rest:
        raise Invalid("%s: a backend URL has no query or fragment" % (shown,))
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise Invalid("%s: a backend URL has no user or password" % (shown,))
    if path:
        raise Invalid(
            "%s: a backend URL has no path (requests keep their own path)" % (shown,)
        )
    host, port = _authority(authority, shown, _DEFAULT_PORTS[scheme])
    return (value, scheme, host, port)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _authority(netloc: str, shown: str, default_port: int) -> Tuple[str, int]:
    """
    The host and port of a backend URL's C{host[:port]}.
    """
    if netloc.startswith("["):
        literal, bracket, rest = netloc[1:].partition("]")
        if not bracket:
            raise Invalid("%s: missing ] after the IPv6 address" % (shown,))
        host = _ipv6_literal(literal)
    else:
        host, colon, port = netloc.partition(":")
        if ":" in port:
            raise Invalid(
                "%s: an IPv6 address must be in brackets, as in http://[::1]:9001"
                % (shown,)
            )
        if not host:
            raise Invalid("%s has no host" % (shown,))
        host = _dns_name(host)
        rest = colon + port
    if not rest:
        return host, default_port
    if not _PORT.match(rest) or not 0 < int(rest[1:]) < 65536:
        raise Invalid("%s: the port must be a number from 1 to 65535" % (shown,))
    return host, int(rest[1:])


_PORT = re.compile(r":[0-9]{1,5}\Z")


def dns_name(value: Any) -> str:
    """
    A name to look up in the DNS (a C{dns} or C{srv} server entry):
    lower-case, international names in IDNA form; the underscores of
    SRV names (C{_http._tcp.app.internal}) are allowed.
    """
    if not isinstance(value, str):
        raise expected("a DNS name such as \"app.internal\"", value)
    # A trailing dot (fully qualified) names the same name.
    return _dns_name(value[:-1] if value.endswith(".") else value)


def resolver_address(value: Any) -> Tuple[str, int]:
    """
    A DNS server: C{address[:port]}, an IPv4 address or a bracketed IPv6
    one (a resolver cannot be found by name), port 53 when none is given.

    @return: the address (IPv6 without brackets) and the port.
    """
    example = 'an address such as "127.0.0.1:5353" or "[::1]:53"'
    if not isinstance(value, str):
        raise expected(example, value)
    shown = describe(value)
    if value.count(":") > 1 and not value.startswith("["):
        raise Invalid('%s: an IPv6 address must be in brackets, as in "[::1]:53"' % (shown,))
    host, port = _authority(value, shown, 53)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise Invalid("expected %s, got %s (not an IP address)" % (example, shown))
    return host, port


def http_url(example: str) -> Callable[[Any], str]:
    """
    A converter of the URL of a service the proxy calls itself (an auth
    service, an OCSP responder): C{http://} or C{https://} with a host,
    in ASCII.

    @param example: a URL shown in the problem of a value that is not one.
    """

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise expected('a URL such as "%s"' % (example,), value)
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not value.isascii()
        ):
            raise Invalid(
                "expected an http:// or https:// URL with a host, got %s"
                % (describe(value),)
            )
        return value

    return convert


def worker_count(value: Any) -> int:
    """
    C{[server] workers}: a number of processes, or C{"auto"} for one per
    core (as the machine loading the configuration counts them).
    """
    if value == "auto":
        return os.cpu_count() or 1
    if isinstance(value, str):
        raise expected('a number of processes or "auto"', value)
    return integer(minimum=1, maximum=256)(value)


def access_log(value: Any) -> Optional[str]:
    """
    C{[log] access}: C{"-"} (standard output), a file path, or C{"off"}
    (L{None}).
    """
    if not isinstance(value, str) or not value:
        raise expected('"-", a file path or "off"', value)
    return None if value == "off" else value


def secret(value: Any) -> str:
    """
    A password: any string that is not empty.
    """
    if not isinstance(value, str) or not value:
        raise expected("a password (a string)", value)
    return value


def token(value: Any) -> str:
    """
    A bearer token: printable ASCII without spaces, as an Authorization
    header carries it (RFC 6750 section 2.1).
    """
    if not isinstance(value, str) or not re.match(r"[A-Za-z0-9._~+/=-]+\Z", value):
        raise expected("a token of letters, digits and ._~+/=-", value)
    return value


def server_header(value: Any) -> Optional[str]:
    """
    The proxy's own Server value (C{[server] server_header}): visible
    ASCII and spaces, as a field value may hold; C{false} or C{""} for
    none.
    """
    if value is False or value == "":
        return None
    if (
        not isinstance(value, str)
        or value != value.strip()
        or not all(" " <= c <= "~" for c in value)
    ):
        raise expected('a Server value such as "txrevproxy", or false', value)
    return value
