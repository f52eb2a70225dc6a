"""
Targeted cache control (RFC 9213): response fields such as
C{CDN-Cache-Control} whose directives are meant for some caches only, and
take the place of Cache-Control and Expires in those caches.

A cache's target list (C{targets} in its C{[caches.NAME]} table) names
the fields it obeys, most specific first.  For each response, the first
of them that is present and is a valid, non-empty Structured Fields
Dictionary decides; when none is, Cache-Control and Expires do, as
before.  The rules of L{txrevproxy.cache.policy} are unchanged: they are
given L{Targets.rule_fields}, the response's fields as this cache must
read them.
"""

from __future__ import annotations

from typing import FrozenSet, List, Optional, Tuple

import attr

from ..http.structured_fields import StructuredFieldError, parse_dictionary

Header = Tuple[bytes, bytes]

#: Directives whose argument is delta-seconds: an sf-integer, not negative.
_SECONDS = frozenset(["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"])

#: Directives without an argument: sf-boolean true.
_FLAGS = frozenset(
    [
        "no-store",
        "must-revalidate",
        "proxy-revalidate",
        "public",
        "immutable",
        "must-understand",
        "no-transform",
    ]
)

#: Directives that are either true or an sf-string listing field names;
#: this cache treats the qualified form as the plain one, as it does in
#: Cache-Control.
_FLAGS_OR_FIELDS = frozenset(["no-cache", "private"])

#: What a targeted field replaces (RFC 9213 section 2.2).
_REPLACED = frozenset([b"cache-control", b"expires"])


def targeted_directives(value: bytes) -> Optional[bytes]:
    """
    The directives of a targeted field value, written as a Cache-Control
    value, or L{None} when the field must be ignored.

    The field is ignored (RFC 9213 section 2.1) when it is not a
    Dictionary, when it is empty, or when a directive this cache knows
    has a value of another type than its definition implies (a decimal
    or quoted C{max-age}, C{no-store=?0}): RFC 9213 says not to consume
    such values, and ignoring the field falls back to the response's
    other controls rather than guessing.  Parameters on directives, and
    directives this cache does not know, are ignored.

    @return: possibly C{b""}, for a valid field without any directive
        this cache knows (C{CDN-Cache-Control: none}), which still takes
        the place of Cache-Control and Expires.
    """
    try:
        dictionary = parse_dictionary(value)
    except StructuredFieldError:
        return None
    if not dictionary:
        return None
    directives = []
    for name, (argument, _parameters) in dictionary.items():
        if name in _SECONDS:
            if type(argument) is not int or argument < 0:
                return None
            directives.append(b"%s=%d" % (name.encode("ascii"), argument))
        elif name in _FLAGS or name in _FLAGS_OR_FIELDS:
            if argument is not True and not (
                name in _FLAGS_OR_FIELDS and type(argument) is str
            ):
                return None
            directives.append(name.encode("ascii"))
    return b", ".join(directives)


@attr.s(frozen=True, auto_attribs=True)
class Targets:
    """
    The target list of one cache, made once from its settings.

    @ivar names: the lower-cased targeted field names, first one first.
    @ivar removed: those of L{names} that are removed from the responses
        sent downstream when they are the one used.
    """

    names: Tuple[bytes, ...]
    removed: FrozenSet[bytes] = frozenset()

    @classmethod
    def of(cls, settings) -> "Targets":
        """
        The target list of a L{txrevproxy.config.model.CacheSettings}.
        """
        return cls(
            tuple(name.encode("ascii") for name in settings.targets),
            frozenset(name.encode("ascii") for name in settings.remove_targeted),
        )

    def used(self, headers: List[Header]) -> Optional[Tuple[bytes, bytes]]:
        """
        The targeted field this cache obeys in a response, and its
        directives as a Cache-Control value; L{None} when none applies.
        Several lines of one field are one Dictionary (RFC 8941 section
        4.2); a field that must be ignored passes the turn to the next.
        """
        for name in self.names:
            values = [value for field, value in headers if field.lower() == name]
            if values:
                directives = targeted_directives(b", ".join(values))
                if directives is not None:
                    return name, directives
        return None

    def rule_fields(self, headers: List[Header]) -> List[Header]:
        """
        A response's fields as the rules of RFC 9111 must read them for
        this cache: the same fields, except that when a targeted field
        applies, its directives are the only Cache-Control, and Expires
        is gone ("it MUST ignore the Cache-Control and Expires header
        fields in that response", RFC 9213 section 2.2).
        """
        if not self.names:
            return headers
        used = self.used(headers)
        if used is None:
            return headers
        fields = [pair for pair in headers if pair[0].lower() not in _REPLACED]
        if used[1]:
            fields.append((b"Cache-Control", used[1]))
        return fields

    def downstream(self, headers: List[Header]) -> List[Header]:
        """
        The fields of a response as sent on to the client.

        RFC 9213 section 3: a cache that uses CDN-Cache-Control "will
        typically forward this header so that downstream CDN caches can
        use it as well", and "MAY remove it when this is undesirable (for
        example, when configured to do so ...)"; section 2.2: targeted
        fields not on the target list "MUST be passed through".  So only
        the field this cache used is removed, and only when the
        configuration lists it in C{remove_targeted}; the stored response
        keeps it, since later answers are computed from it.
        """
        if not self.removed:
            return headers
        used = self.used(headers)
        if used is None or used[0] not in self.removed:
            return headers
        return [pair for pair in headers if pair[0].lower() != used[0]]
