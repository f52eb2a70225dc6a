"""
C{type = "security_headers"}: the response fields that make browsers
safer, and the removal of the fields that tell an attacker what runs
behind the proxy.

Each field has a sane default and can be changed, or switched off with
C{false}.  A field the backend sent itself is kept unless C{override =
true}.  Strict-Transport-Security is only sent over HTTPS (browsers ignore
it over plain HTTP, RFC 6797 section 7.2).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import attr
from zope.interface import implementer

from ..config.schema import Field, Table, array_of, expected
from ..config.values import boolean, header_name, hsts_policy
from ..interfaces import Header, IFilter

#: Field value or off.
Setting = Optional[str]


def _value_or_off(check=None):
    def convert(value: Any) -> Setting:
        if value is False:
            return None
        if (
            not isinstance(value, str)
            or not value
            or any(c in value for c in "\r\n\x00")
        ):
            raise expected("a header value, or false to send none", value)
        return check(value) if check is not None else value

    return convert


@attr.s(frozen=True, auto_attribs=True)
class Options:
    hsts: Setting
    content_type_options: Setting
    frame_options: Setting
    referrer_policy: Setting
    content_security_policy: Setting
    permissions_policy: Setting
    cross_origin_opener_policy: Setting
    hide_headers: Tuple[str, ...]
    server: Setting
    override: bool


OPTIONS = Table(
    Options,
    {
        "hsts": Field(
            _value_or_off(hsts_policy), default="max-age=31536000; includeSubDomains"
        ),
        "content_type_options": Field(_value_or_off(), default="nosniff"),
        "frame_options": Field(_value_or_off(), default="SAMEORIGIN"),
        "referrer_policy": Field(
            _value_or_off(), default="strict-origin-when-cross-origin"
        ),
        "content_security_policy": Field(_value_or_off(), default=False),
        "permissions_policy": Field(
            _value_or_off(), default="camera=(), microphone=(), geolocation=()"
        ),
        "cross_origin_opener_policy": Field(_value_or_off(), default=False),
        "hide_headers": Field(
            array_of(header_name, what='an array of header names such as ["Server"]'),
            default=[
                "Server",
                "X-Powered-By",
                "X-AspNet-Version",
                "X-AspNetMvc-Version",
            ],
        ),
        "server": Field(_value_or_off(), default=False),
        "override": Field(boolean, default=False),
    },
)


@implementer(IFilter)
class SecurityHeaders:
    def __init__(self, options: Options) -> None:
        fields = [
            (b"X-Content-Type-Options", options.content_type_options),
            (b"X-Frame-Options", options.frame_options),
            (b"Referrer-Policy", options.referrer_policy),
            (b"Content-Security-Policy", options.content_security_policy),
            (b"Permissions-Policy", options.permissions_policy),
            (b"Cross-Origin-Opener-Policy", options.cross_origin_opener_policy),
            (b"Server", options.server),
        ]
        added = tuple(
            (name, value.encode("latin-1"))
            for name, value in fields
            if value is not None
        )
        hidden = {name.lower().encode("ascii") for name in options.hide_headers}
        if options.server is not None:
            hidden.add(b"server")
        self._http = _Plan(added, frozenset(hidden), options.override)
        if options.hsts is None:
            self._https = self._http
        else:
            hsts = ((b"Strict-Transport-Security", options.hsts.encode("latin-1")),)
            self._https = _Plan(added + hsts, frozenset(hidden), options.override)

    def request(self, request) -> None:
        return None

    def response(self, request, status, headers) -> None:
        plan = self._https if request.site.scheme == b"https" else self._http
        plan.apply(headers)
        return None


class _Plan:
    """
    What L{SecurityHeaders} does to the response fields of one scheme,
    worked out when the filter is configured: a response costs one pass
    over its field names, and nothing more when none of them is hidden,
    replaced or already sent by the backend (the usual case).

    @ivar added: the fields added, in order.
    @ivar names: their names, lowercased.
    @ivar dropped: the lowercased names of the backend's fields that are
        removed: the hidden ones, and, with C{override}, the added ones.
    """

    def __init__(self, added, hidden: frozenset, override: bool) -> None:
        self.added = added
        self.names = frozenset(name.lower() for name, _ in added)
        self.dropped = hidden | self.names if override else hidden

    def apply(self, headers: List[Header]) -> None:
        """
        Change the response fields C{headers} in place.
        """
        lowered = [field[0].lower() for field in headers]
        dropped = self.dropped
        if dropped.isdisjoint(lowered) and self.names.isdisjoint(lowered):
            headers.extend(self.added)
            return
        kept = [field for field, name in zip(headers, lowered) if name not in dropped]
        present = {name for name in lowered if name not in dropped}
        kept.extend(field for field in self.added if field[0].lower() not in present)
        headers[:] = kept


def configure(options, context) -> SecurityHeaders:
    return SecurityHeaders(OPTIONS(options))
